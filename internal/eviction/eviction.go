// Package eviction watches the node's memory and filesystem against the
// kubelet's hard eviction thresholds (--eviction-hard): it gives the
// MemoryPressure and DiskPressure conditions, and under memory pressure it
// evicts pods one at a time, as the kubelet does, so that the kernel's OOM
// killer does not pick the victim (or the agent) itself.
package eviction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	"knode.io/knode/internal/nodeinfo"
	"knode.io/knode/internal/podsource"
	"knode.io/knode/internal/safefs"
)

// The signals knode measures, named as the kubelet's.
const (
	MemoryAvailable  = "memory.available"
	NodeFsAvailable  = "nodefs.available"
	NodeFsInodesFree = "nodefs.inodesFree"
)

// DefaultHard is the kubelet's default --eviction-hard on Linux, less the
// imagefs signals: knode measures one filesystem, its root dir's.
const DefaultHard = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%"

// Threshold is one hard eviction threshold: a quantity, or a percentage of
// the signal's capacity.
type Threshold struct {
	Signal   string
	Quantity *resource.Quantity
	Percent  float64
}

func (t Threshold) String() string {
	if t.Quantity != nil {
		return t.Signal + "<" + t.Quantity.String()
	}
	return t.Signal + "<" + strconv.FormatFloat(t.Percent, 'f', -1, 64) + "%"
}

// limit is the threshold in the signal's unit for a capacity.
func (t Threshold) limit(capacity uint64) uint64 {
	if t.Quantity != nil {
		return uint64(max(t.Quantity.Value(), 0))
	}
	return uint64(float64(capacity) * t.Percent / 100)
}

// ParseHard reads the kubelet's --eviction-hard syntax,
// "signal<value,signal<value", values a quantity or a percentage.
func ParseHard(spec string) ([]Threshold, error) {
	m := map[string]string{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		signal, value, ok := strings.Cut(part, "<")
		if !ok {
			return nil, fmt.Errorf("eviction threshold %q: want signal<value, e.g. memory.available<100Mi", part)
		}
		m[strings.TrimSpace(signal)] = strings.TrimSpace(value)
	}
	return ParseMap(m)
}

// unmeasured are the kubelet's other signals: accepted, so kubelet
// configurations keep working, but not acted on (Ignored names them).
var unmeasured = map[string]bool{
	"imagefs.available": true, "imagefs.inodesFree": true, "containerfs.available": true,
	"containerfs.inodesFree": true, "pid.available": true, "allocatableMemory.available": true,
}

// Ignored lists the kubelet signals in m that knode does not measure, for
// the start-up warning.
func Ignored(m map[string]string) []string {
	var out []string
	for signal := range m {
		if unmeasured[signal] {
			out = append(out, signal)
		}
	}
	sort.Strings(out)
	return out
}

// ParseMap reads KubeletConfiguration's evictionHard map. The kubelet's
// signals knode does not measure are skipped (see Ignored); anything else
// unknown is an error.
func ParseMap(m map[string]string) ([]Threshold, error) {
	var out []Threshold
	for signal, value := range m {
		switch {
		case signal == MemoryAvailable, signal == NodeFsAvailable, signal == NodeFsInodesFree:
		case unmeasured[signal]:
			continue
		default:
			return nil, fmt.Errorf("eviction signal %q is unknown: knode measures %s, %s and %s", signal, MemoryAvailable, NodeFsAvailable, NodeFsInodesFree)
		}
		t := Threshold{Signal: signal}
		if pct, ok := strings.CutSuffix(value, "%"); ok {
			p, err := strconv.ParseFloat(pct, 64)
			if err != nil || p < 0 || p > 100 {
				return nil, fmt.Errorf("eviction threshold %s<%s: a percentage must be between 0 and 100", signal, value)
			}
			t.Percent = p
		} else {
			q, err := resource.ParseQuantity(value)
			if err != nil || q.Sign() < 0 {
				return nil, fmt.Errorf("eviction threshold %s<%s: want a quantity (100Mi) or a percentage (10%%)", signal, value)
			}
			t.Quantity = &q
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Signal < out[j].Signal })
	return out, nil
}

// Observation is a signal's available amount against its capacity.
type Observation struct{ Available, Capacity uint64 }

// Measure reads the signals: memory from /proc/meminfo (proc), the
// filesystem of rootDir.
func Measure(proc, rootDir string) (map[string]Observation, error) {
	obs := map[string]Observation{}
	mem, err := nodeinfo.Meminfo(filepath.Join(proc, "meminfo"))
	if err != nil {
		return nil, err
	}
	avail, ok := mem["MemAvailable"]
	if !ok || mem["MemTotal"] == 0 {
		return nil, fmt.Errorf("no MemAvailable or MemTotal in %s/meminfo", proc)
	}
	obs[MemoryAvailable] = Observation{Available: avail, Capacity: mem["MemTotal"]}
	var st unix.Statfs_t
	if err := unix.Statfs(rootDir, &st); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", rootDir, err)
	}
	bsize := uint64(st.Bsize)
	obs[NodeFsAvailable] = Observation{Available: st.Bavail * bsize, Capacity: st.Blocks * bsize}
	obs[NodeFsInodesFree] = Observation{Available: st.Ffree, Capacity: st.Files}
	return obs, nil
}

// Pods is the pod manager as eviction sees it.
type Pods interface {
	Pods() []*v1.Pod
	// Evict stops the pod: it ends Failed, reason Evicted, with message.
	// disruption, when not empty, is the message of the DisruptionTarget
	// condition (reason TerminationByKubelet) the pod gets: the kubelet
	// sets it on node-pressure evictions, not on local-storage limits.
	Evict(uid types.UID, message, disruption string) bool
}

// Usage reports each pod's memory working set.
type Usage interface {
	PodMemory(ctx context.Context) (map[types.UID]uint64, error)
}

// Manager measures the signals every 10 seconds, as the kubelet's
// eviction manager does.
type Manager struct {
	thresholds []Threshold
	rootDir    string
	// podLogsDir holds the pods' logs, which count as ephemeral storage.
	podLogsDir string
	proc       string
	log        *slog.Logger

	mu       sync.Mutex
	observed map[string]Observation
	err      error
}

// New returns a Manager measuring the filesystem of rootDir.
func New(thresholds []Threshold, rootDir string, log *slog.Logger) *Manager {
	return &Manager{thresholds: thresholds, rootDir: rootDir, proc: "/proc", log: log}
}

// MemoryPressure is true while a memory threshold is met.
func (m *Manager) MemoryPressure() (bool, error) { return m.pressure(MemoryAvailable) }

// DiskPressure is true while a filesystem threshold is met.
func (m *Manager) DiskPressure() (bool, error) { return m.pressure(NodeFsAvailable, NodeFsInodesFree) }

func (m *Manager) pressure(signals ...string) (bool, error) {
	m.mu.Lock()
	observed, err := m.observed, m.err
	m.mu.Unlock()
	if observed == nil && err == nil {
		observed, err = m.observe()
	}
	if err != nil {
		return false, err
	}
	for _, t := range m.met(observed) {
		for _, s := range signals {
			if t.Signal == s {
				return true, nil
			}
		}
	}
	return false, nil
}

func (m *Manager) observe() (map[string]Observation, error) {
	obs, err := Measure(m.proc, m.rootDir)
	m.mu.Lock()
	m.observed, m.err = obs, err
	m.mu.Unlock()
	return obs, err
}

func (m *Manager) met(obs map[string]Observation) []Threshold {
	var out []Threshold
	for _, t := range m.thresholds {
		if o, ok := obs[t.Signal]; ok && o.Available < t.limit(o.Capacity) {
			out = append(out, t)
		}
	}
	return out
}

// Run observes every 10 seconds until ctx ends, evicting a pod in each
// round that finds a memory threshold met.
func (m *Manager) Run(ctx context.Context, pods Pods, usage Usage) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		m.Synchronize(ctx, pods, usage)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Synchronize observes once and, under memory pressure, evicts the pod the
// kubelet would: among pods that are neither static nor critical, first
// those using more memory than they request, then the lowest priority,
// then the most memory above the request. Before that, a pod whose disk
// emptyDir exceeds its sizeLimit is evicted (emptyDirOverLimit). Node disk
// pressure is reported, not acted on.
func (m *Manager) Synchronize(ctx context.Context, pods Pods, usage Usage) (evicted types.UID) {
	if uid := m.emptyDirOverLimit(pods); uid != "" {
		return uid
	}
	if layers, ok := usage.(WritableLayers); ok {
		if uid := m.ephemeralOverLimit(ctx, pods, layers); uid != "" {
			return uid
		}
	}
	obs, err := m.observe()
	if err != nil {
		m.log.Warn("eviction signals cannot be measured", "err", err)
		return ""
	}
	var memory *Threshold
	for _, t := range m.met(obs) {
		if t.Signal == MemoryAvailable {
			memory = &t
		}
	}
	if memory == nil {
		return ""
	}
	memoryOf, err := usage.PodMemory(ctx)
	if err != nil {
		m.log.Warn("under memory pressure, but pods' memory cannot be read", "err", err)
		return ""
	}
	victim, used, requested := rank(pods.Pods(), memoryOf)
	if victim == nil {
		m.log.Warn("under memory pressure, but no pod may be evicted (static and critical pods are not)", "threshold", memory.String())
		return ""
	}
	o := obs[MemoryAvailable]
	message := fmt.Sprintf("The node was low on resource: memory. Threshold quantity: %s, available: %s. The pod was using %s, request is %s.",
		quantity(memory.limit(o.Capacity)), quantity(o.Available), quantity(used), quantity(requested))
	if pods.Evict(victim.UID, message, message) {
		m.log.Warn("evicting a pod under memory pressure", "pod", victim.Namespace+"/"+victim.Name, "message", message)
		return victim.UID
	}
	return ""
}

// emptyDirOverLimit evicts the first pod found whose disk emptyDir holds
// more than its sizeLimit, with the kubelet's message. Without it the
// limit would be accepted and ignored, and a pod could fill the node's
// root file system, which its emptyDirs share with the host. (Memory
// emptyDirs are bounded by their tmpfs size.) A volume too deep to measure
// counts as over: burying data must not hide it. Static and critical pods
// are not evicted, as in the kubelet.
func (m *Manager) emptyDirOverLimit(pods Pods) types.UID {
	for _, p := range pods.Pods() {
		if podsource.IsStatic(p) || p.Status.Phase == v1.PodFailed || p.Status.Phase == v1.PodSucceeded ||
			p.Spec.Priority != nil && *p.Spec.Priority >= CriticalPriority {
			continue
		}
		for _, vol := range p.Spec.Volumes {
			ed := vol.EmptyDir
			if ed == nil || ed.Medium == v1.StorageMediumMemory || ed.SizeLimit == nil || ed.SizeLimit.Sign() <= 0 {
				continue
			}
			limit := ed.SizeLimit.Value()
			// Where the pod manager makes it (internal/pods: PodDir, emptyDirPath).
			dir := filepath.Join(m.rootDir, "pods", string(p.UID), "volumes", "kubernetes.io~empty-dir", vol.Name)
			d, err := safefs.Open(dir)
			if err != nil {
				continue // not made yet, or already gone
			}
			used, err := d.DiskUsage(limit)
			d.Close()
			var message string
			switch {
			case errors.Is(err, safefs.ErrTooDeep):
				message = fmt.Sprintf("Usage of EmptyDir volume %q cannot be measured (its directories are nested too deep), limit %q. ", vol.Name, ed.SizeLimit.String())
			case err != nil:
				m.log.Warn("emptyDir usage cannot be measured", "pod", p.Namespace+"/"+p.Name, "volume", vol.Name, "err", err)
				continue
			case used > limit:
				message = fmt.Sprintf("Usage of EmptyDir volume %q exceeds the limit %q. ", vol.Name, ed.SizeLimit.String())
			default:
				continue
			}
			if pods.Evict(p.UID, message, "") {
				m.log.Warn("evicting a pod over its emptyDir sizeLimit", "pod", p.Namespace+"/"+p.Name, "message", message)
				return p.UID
			}
		}
	}
	return ""
}

func quantity(bytes uint64) string {
	return resource.NewQuantity(int64(min(bytes, 1<<62)), resource.BinarySI).String()
}

// CriticalPriority is where the kubelet's critical pods begin
// (system-cluster-critical and above).
const CriticalPriority = 2_000_000_000

// rank picks the pod to evict, with its usage and request.
func rank(all []*v1.Pod, usage map[types.UID]uint64) (*v1.Pod, uint64, uint64) {
	type candidate struct {
		pod             *v1.Pod
		used, requested uint64
		priority        int32
	}
	var cands []candidate
	for _, p := range all {
		if podsource.IsStatic(p) || p.Status.Phase == v1.PodFailed || p.Status.Phase == v1.PodSucceeded {
			continue // static pods are critical to the kubelet; finished pods use nothing
		}
		prio := int32(0)
		if p.Spec.Priority != nil {
			prio = *p.Spec.Priority
		}
		if prio >= CriticalPriority {
			continue
		}
		var req uint64
		for _, c := range p.Spec.Containers {
			if q, ok := c.Resources.Requests[v1.ResourceMemory]; ok {
				req += uint64(max(q.Value(), 0))
			}
		}
		cands = append(cands, candidate{pod: p, used: usage[p.UID], requested: req, priority: prio})
	}
	if len(cands) == 0 {
		return nil, 0, 0
	}
	over := func(c candidate) bool { return c.used > c.requested }
	excess := func(c candidate) int64 { return int64(c.used) - int64(c.requested) }
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if over(a) != over(b) {
			return over(a)
		}
		if a.priority != b.priority {
			return a.priority < b.priority
		}
		return excess(a) > excess(b)
	})
	return cands[0].pod, cands[0].used, cands[0].requested
}

// Reservation is what the hard thresholds hold back from the node's
// allocatable, as the kubelet's hardEvictionReservation: memory.available
// from memory, nodefs.available from ephemeral-storage, percentages of
// the given capacities.
func Reservation(thresholds []Threshold, memoryCapacity, nodefsCapacity int64) v1.ResourceList {
	out := v1.ResourceList{}
	for _, t := range thresholds {
		switch t.Signal {
		case MemoryAvailable:
			out[v1.ResourceMemory] = *resource.NewQuantity(int64(t.limit(uint64(max(memoryCapacity, 0)))), resource.BinarySI)
		case NodeFsAvailable:
			out[v1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(t.limit(uint64(max(nodefsCapacity, 0)))), resource.BinarySI)
		}
	}
	return out
}
