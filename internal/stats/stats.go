// Package stats reads resource usage — the node's from the kernel, the
// containers' from the CRI runtime — and serves it as the kubelet's
// resource metrics (GET /metrics/resource), which metrics-server scrapes
// for `kubectl top` and the autoscalers.
package stats

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/nodeinfo"
)

// Runtime is the part of the CRI runtime service the collector reads.
type Runtime interface {
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
}

// The kubelet's resource metrics, by name and help text.
var (
	nodeCPU = prometheus.NewDesc("node_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the node in core-seconds", nil, nil)
	nodeMemory = prometheus.NewDesc("node_memory_working_set_bytes",
		"Current working set of the node in bytes", nil, nil)
	containerCPU = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the container in core-seconds", []string{"container", "pod", "namespace"}, nil)
	containerMemory = prometheus.NewDesc("container_memory_working_set_bytes",
		"Current working set of the container in bytes", []string{"container", "pod", "namespace"}, nil)
	containerStart = prometheus.NewDesc("container_start_time_seconds",
		"Start time of the container since unix epoch in seconds", []string{"container", "pod", "namespace"}, nil)
	podCPU = prometheus.NewDesc("pod_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the pod in core-seconds", []string{"pod", "namespace"}, nil)
	podMemory = prometheus.NewDesc("pod_memory_working_set_bytes",
		"Current working set of the pod in bytes", []string{"pod", "namespace"}, nil)
	scrapeError = prometheus.NewDesc("scrape_error",
		"1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
)

// Options configure a Collector.
type Options struct {
	Runtime Runtime
	// Selector keeps to the containers this knode made.
	Selector map[string]string
	Timeout  time.Duration
	// NodeName and RootDir (whose filesystem is the node's) are for the summary.
	NodeName string
	RootDir  string
}

// Collector gathers the node's and its containers' usage at each scrape.
type Collector struct {
	rt       Runtime
	selector map[string]string
	timeout  time.Duration
	nodeName string
	rootDir  string
	started  time.Time
	// root is where /proc and /sys are found (a test's directory).
	root string

	mu      sync.Mutex
	prevCPU float64 // the node's CPU seconds at prevAt, for usageNanoCores
	prevAt  time.Time
}

// NewCollector returns a Collector.
func NewCollector(o Options) *Collector {
	return &Collector{rt: o.Runtime, selector: o.Selector, timeout: o.Timeout, nodeName: o.NodeName, rootDir: o.RootDir,
		started: time.Now(), root: "/"}
}

// Registry is a registry holding only the resource metrics.
func (c *Collector) Registry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(c)
	return r
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodeCPU, nodeMemory, containerCPU, containerMemory, containerStart, podCPU, podMemory, scrapeError} {
		ch <- d
	}
}

// Snapshot is one reading of the node's and its running containers' usage.
type Snapshot struct {
	Time time.Time
	// NodeCPUSeconds and the node's memory; NodeErr tells why they are missing.
	NodeCPUSeconds float64
	NodeMemory     NodeMemory
	NodeErr        error
	Containers     []Container
	// ContainersErr is set when the runtime could not be read.
	ContainersErr error
}

// NodeMemory is the node's memory in bytes.
type NodeMemory struct {
	Available, Usage, WorkingSet uint64
}

// Container is one running container's usage, as the runtime reports it.
type Container struct {
	ID, Name, Pod, Namespace, PodUID string
	Start                            time.Time
	CPU                              *runtimeapi.CpuUsage
	Memory                           *runtimeapi.MemoryUsage
	// Writable is the container's writable layer, as the runtime measures it.
	Writable *runtimeapi.FilesystemUsage
}

// Read takes a snapshot.
func (c *Collector) Read(ctx context.Context) Snapshot {
	snap := Snapshot{Time: time.Now()}
	cpu, cpuErr := c.nodeCPUSeconds()
	mem, memErr := c.nodeMemory()
	snap.NodeCPUSeconds, snap.NodeMemory, snap.NodeErr = cpu, mem, errors.Join(cpuErr, memErr)
	snap.Containers, snap.ContainersErr = c.containers(ctx)
	return snap
}

// Collect implements prometheus.Collector. Samples carry the time they were
// read, as the kubelet's do: metrics-server computes rates from them.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.Read(context.Background())
	if snap.NodeErr == nil {
		ch <- prometheus.NewMetricWithTimestamp(snap.Time, prometheus.MustNewConstMetric(nodeCPU, prometheus.CounterValue, snap.NodeCPUSeconds))
		ch <- prometheus.NewMetricWithTimestamp(snap.Time, prometheus.MustNewConstMetric(nodeMemory, prometheus.GaugeValue, float64(snap.NodeMemory.WorkingSet)))
	}
	failed := 0.0
	if snap.ContainersErr != nil {
		failed = 1
	}
	pods := map[podKey]*podUsage{}
	for _, ct := range snap.Containers {
		key := podKey{ct.Pod, ct.Namespace}
		if pods[key] == nil {
			pods[key] = &podUsage{}
		}
		usage := pods[key]
		ch <- prometheus.MustNewConstMetric(containerStart, prometheus.GaugeValue, float64(ct.Start.UnixNano())/1e9, ct.Name, ct.Pod, ct.Namespace)
		if cpu := ct.CPU; cpu != nil && cpu.GetUsageCoreNanoSeconds() != nil {
			at := time.Unix(0, cpu.GetTimestamp())
			v := float64(cpu.GetUsageCoreNanoSeconds().GetValue()) / 1e9
			ch <- prometheus.NewMetricWithTimestamp(at, prometheus.MustNewConstMetric(containerCPU, prometheus.CounterValue, v, ct.Name, ct.Pod, ct.Namespace))
			usage.cpu += v
			usage.cpuAt = later(usage.cpuAt, at)
		}
		if mem := ct.Memory; mem != nil && mem.GetWorkingSetBytes() != nil {
			at := time.Unix(0, mem.GetTimestamp())
			v := float64(mem.GetWorkingSetBytes().GetValue())
			ch <- prometheus.NewMetricWithTimestamp(at, prometheus.MustNewConstMetric(containerMemory, prometheus.GaugeValue, v, ct.Name, ct.Pod, ct.Namespace))
			usage.memory += v
			usage.memoryAt = later(usage.memoryAt, at)
		}
	}
	// A pod's usage is its containers' (the sandbox's pause process is
	// negligible).
	for key, u := range pods {
		if !u.cpuAt.IsZero() {
			ch <- prometheus.NewMetricWithTimestamp(u.cpuAt, prometheus.MustNewConstMetric(podCPU, prometheus.CounterValue, u.cpu, key.name, key.namespace))
		}
		if !u.memoryAt.IsZero() {
			ch <- prometheus.NewMetricWithTimestamp(u.memoryAt, prometheus.MustNewConstMetric(podMemory, prometheus.GaugeValue, u.memory, key.name, key.namespace))
		}
	}
	ch <- prometheus.MustNewConstMetric(scrapeError, prometheus.GaugeValue, failed)
}

type podKey struct{ name, namespace string }

type podUsage struct {
	cpu, memory float64
	cpuAt       time.Time
	memoryAt    time.Time
}

// containers reads the running containers' usage from the runtime.
func (c *Collector) containers(ctx context.Context) ([]Container, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	running, err := c.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: c.selector,
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	started := map[string]time.Time{}
	for _, ct := range running {
		started[ct.Id] = time.Unix(0, ct.CreatedAt)
	}
	all, err := c.rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{LabelSelector: c.selector})
	if err != nil {
		return nil, fmt.Errorf("list container stats: %w", err)
	}
	var out []Container
	for _, st := range all {
		attr := st.GetAttributes()
		start, ok := started[attr.GetId()]
		if !ok {
			continue // only running containers, as the kubelet reports
		}
		labels := attr.GetLabels()
		out = append(out, Container{ID: attr.GetId(), Name: attr.GetMetadata().GetName(),
			Pod: labels["io.kubernetes.pod.name"], Namespace: labels["io.kubernetes.pod.namespace"], PodUID: labels["io.kubernetes.pod.uid"],
			Start: start, CPU: st.GetCpu(), Memory: st.GetMemory(), Writable: st.GetWritableLayer()})
	}
	return out, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// nodeCPUSeconds is the CPU time the whole machine spent working: the root
// cgroup's usage on cgroup v2, else the non-idle time in /proc/stat.
func (c *Collector) nodeCPUSeconds() (float64, error) {
	if v, err := readKeyed(filepath.Join(c.root, "sys/fs/cgroup/cpu.stat"), "usage_usec"); err == nil {
		return float64(v) / 1e6, nil
	}
	data, err := os.ReadFile(filepath.Join(c.root, "proc/stat"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat: %q", line)
	}
	var busy uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already in user time
			break
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		busy += n
	}
	const userHZ = 100 // the kernel's USER_HZ on Linux
	return float64(busy) / userHZ, nil
}

// nodeMemory reads /proc/meminfo: available, in use, and the working set
// (in use less what the kernel can drop at once, inactive file pages), the
// kubelet's numbers for the node.
func (c *Collector) nodeMemory() (NodeMemory, error) {
	mem, err := nodeinfo.Meminfo(filepath.Join(c.root, "proc/meminfo"))
	if err != nil {
		return NodeMemory{}, err
	}
	total, free, inactive := mem["MemTotal"], mem["MemFree"], mem["Inactive(file)"]
	if total == 0 {
		return NodeMemory{}, fmt.Errorf("no MemTotal in /proc/meminfo")
	}
	used := total - min(free, total)
	return NodeMemory{Available: mem["MemAvailable"], Usage: used, WorkingSet: used - min(inactive, used)}, nil
}

// readKeyed reads "key value" lines (cgroup stat files) for one key.
func readKeyed(path, key string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

// WritableLayers is each running container's writable layer in bytes, by
// pod and container name, for the containers' ephemeral-storage limits.
func (c *Collector) WritableLayers(ctx context.Context) (map[types.UID]map[string]uint64, error) {
	containers, err := c.containers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[types.UID]map[string]uint64{}
	for _, ct := range containers {
		uid := types.UID(ct.PodUID)
		if out[uid] == nil {
			out[uid] = map[string]uint64{}
		}
		out[uid][ct.Name] += ct.Writable.GetUsedBytes().GetValue()
	}
	return out, nil
}

// PodMemory is each running pod's working set (its containers' sum), for
// eviction.
func (c *Collector) PodMemory(ctx context.Context) (map[types.UID]uint64, error) {
	containers, err := c.containers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[types.UID]uint64{}
	for _, ct := range containers {
		if ct.Memory != nil && ct.Memory.GetWorkingSetBytes() != nil {
			out[types.UID(ct.PodUID)] += ct.Memory.GetWorkingSetBytes().GetValue()
		}
	}
	return out, nil
}
