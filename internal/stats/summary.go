package stats

import (
	"context"
	"sort"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Summary is the kubelet's stats summary (GET /stats/summary, v1alpha1):
// the node's CPU, memory and filesystem (the root dir's), and each running
// pod's and container's CPU and memory as the runtime reports them.
// Monitoring agents written for the kubelet read it.
func (c *Collector) Summary(ctx context.Context, onlyCPUAndMemory bool) *statsapi.Summary {
	snap := c.Read(ctx)
	now := metav1.NewTime(snap.Time)
	node := statsapi.NodeStats{NodeName: c.nodeName, StartTime: metav1.NewTime(c.started)}
	if snap.NodeErr == nil {
		usage := uint64(snap.NodeCPUSeconds * 1e9)
		node.CPU = &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: &usage, UsageNanoCores: c.nodeNanoCores(snap)}
		m := snap.NodeMemory
		node.Memory = &statsapi.MemoryStats{Time: now, AvailableBytes: &m.Available, UsageBytes: &m.Usage, WorkingSetBytes: &m.WorkingSet}
	}
	if !onlyCPUAndMemory {
		node.Fs = fsStats(c.rootDir, now)
	}
	byPod := map[string]*statsapi.PodStats{}
	for _, ct := range snap.Containers {
		p := byPod[ct.PodUID]
		if p == nil {
			p = &statsapi.PodStats{PodRef: statsapi.PodReference{Name: ct.Pod, Namespace: ct.Namespace, UID: ct.PodUID},
				StartTime: metav1.NewTime(ct.Start), Containers: []statsapi.ContainerStats{}}
			byPod[ct.PodUID] = p
		}
		if ct.Start.Before(p.StartTime.Time) {
			p.StartTime = metav1.NewTime(ct.Start)
		}
		cs := statsapi.ContainerStats{Name: ct.Name, StartTime: metav1.NewTime(ct.Start), CPU: cpuStats(ct), Memory: memoryStats(ct)}
		p.Containers = append(p.Containers, cs)
		p.CPU = addCPU(p.CPU, cs.CPU)
		p.Memory = addMemory(p.Memory, cs.Memory)
	}
	summary := &statsapi.Summary{Node: node, Pods: []statsapi.PodStats{}}
	for _, p := range byPod {
		sort.Slice(p.Containers, func(i, j int) bool { return p.Containers[i].Name < p.Containers[j].Name })
		summary.Pods = append(summary.Pods, *p)
	}
	sort.Slice(summary.Pods, func(i, j int) bool {
		a, b := summary.Pods[i].PodRef, summary.Pods[j].PodRef
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	return summary
}

// nodeNanoCores is the node's CPU use since the last summary, in
// nanocores; nil for the first.
func (c *Collector) nodeNanoCores(snap Snapshot) *uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { c.prevCPU, c.prevAt = snap.NodeCPUSeconds, snap.Time }()
	elapsed := snap.Time.Sub(c.prevAt).Seconds()
	if c.prevAt.IsZero() || elapsed <= 0 || snap.NodeCPUSeconds < c.prevCPU {
		return nil
	}
	v := uint64((snap.NodeCPUSeconds - c.prevCPU) / elapsed * 1e9)
	return &v
}

func cpuStats(ct Container) *statsapi.CPUStats {
	if ct.CPU == nil {
		return nil
	}
	return &statsapi.CPUStats{Time: metav1.NewTime(time.Unix(0, ct.CPU.GetTimestamp())),
		UsageCoreNanoSeconds: value(ct.CPU.GetUsageCoreNanoSeconds()), UsageNanoCores: value(ct.CPU.GetUsageNanoCores())}
}

func memoryStats(ct Container) *statsapi.MemoryStats {
	m := ct.Memory
	if m == nil {
		return nil
	}
	return &statsapi.MemoryStats{Time: metav1.NewTime(time.Unix(0, m.GetTimestamp())),
		WorkingSetBytes: value(m.GetWorkingSetBytes()), UsageBytes: value(m.GetUsageBytes()), RSSBytes: value(m.GetRssBytes()),
		AvailableBytes: value(m.GetAvailableBytes()), PageFaults: value(m.GetPageFaults()), MajorPageFaults: value(m.GetMajorPageFaults())}
}

// value is a CRI optional number as the stats API's optional number.
func value(v *runtimeapi.UInt64Value) *uint64 {
	if v == nil {
		return nil
	}
	n := v.GetValue()
	return &n
}

// addCPU sums a pod's containers' CPU.
func addCPU(sum, c *statsapi.CPUStats) *statsapi.CPUStats {
	if c == nil {
		return sum
	}
	if sum == nil {
		sum = &statsapi.CPUStats{Time: c.Time}
	}
	sum.UsageCoreNanoSeconds = addUint(sum.UsageCoreNanoSeconds, c.UsageCoreNanoSeconds)
	sum.UsageNanoCores = addUint(sum.UsageNanoCores, c.UsageNanoCores)
	if c.Time.After(sum.Time.Time) {
		sum.Time = c.Time
	}
	return sum
}

// addMemory sums a pod's containers' memory.
func addMemory(sum, m *statsapi.MemoryStats) *statsapi.MemoryStats {
	if m == nil {
		return sum
	}
	if sum == nil {
		sum = &statsapi.MemoryStats{Time: m.Time}
	}
	sum.WorkingSetBytes = addUint(sum.WorkingSetBytes, m.WorkingSetBytes)
	sum.UsageBytes = addUint(sum.UsageBytes, m.UsageBytes)
	sum.RSSBytes = addUint(sum.RSSBytes, m.RSSBytes)
	if m.Time.After(sum.Time.Time) {
		sum.Time = m.Time
	}
	return sum
}

func addUint(a, b *uint64) *uint64 {
	if b == nil {
		return a
	}
	v := *b
	if a != nil {
		v += *a
	}
	return &v
}

// fsStats is a filesystem's capacity, availability and inodes.
func fsStats(path string, now metav1.Time) *statsapi.FsStats {
	var st unix.Statfs_t
	if path == "" || unix.Statfs(path, &st) != nil {
		return nil
	}
	bsize := uint64(st.Bsize)
	capacity, available := st.Blocks*bsize, st.Bavail*bsize
	used := (st.Blocks - st.Bfree) * bsize
	inodes, free := st.Files, st.Ffree
	inodesUsed := inodes - free
	return &statsapi.FsStats{Time: now, CapacityBytes: &capacity, AvailableBytes: &available, UsedBytes: &used,
		Inodes: &inodes, InodesFree: &free, InodesUsed: &inodesUsed}
}
