package pods

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	"knode.io/knode/internal/podpath"
	"knode.io/knode/internal/podsource"
)

// Manager owns one record per pod: what the sources declare of it, its
// worker, status, probes, volumes and what others asked of it.
type Manager struct {
	opts Options
	log  *slog.Logger
	// d is what the workers use; the manager shares its back-off, caches,
	// probes and volume writer.
	d *workerDeps

	mu           sync.RWMutex
	sourcesReady map[string]bool
	expected     []string // sources that must report before orphans are removed
	// records hold each pod's state, as the kubelet's podSyncStatus: a pod
	// gone from sources and runtime loses its record, and with it everything.
	records map[types.UID]*podRecord
	// lastRelist is when the runtime was last listed successfully,
	// lastRelistAttempt when it was last tried, relistErr why that failed.
	lastRelist        time.Time
	lastRelistAttempt time.Time
	relistErr         error
	// runtimePods is the last relist's view, for /runningpods and metrics.
	runtimePods map[types.UID]*runtimePod

	// version changes whenever Pods() would answer differently, so readers
	// can cache what they derive from it.
	version atomic.Uint64
	// changed is closed (and replaced) at each version change.
	changed chan struct{}

	// admitMu makes admission one pod at a time.
	admitMu sync.Mutex

	relistNow       chan struct{}
	devicesRetained bool
	wg              sync.WaitGroup
	ctx             context.Context
}

// NewManager returns a manager that waits for each of sources to report once
// before it removes runtime pods no source declares. It fails when the
// in-place resize checkpoints in the root dir cannot be read or verified,
// as the kubelet then does not start.
func NewManager(opts Options, sources ...string) (*Manager, error) {
	opts = opts.withDefaults()
	m := &Manager{
		opts:         opts,
		log:          opts.Log,
		sourcesReady: map[string]bool{},
		expected:     sources,
		records:      map[types.UID]*podRecord{},
		relistNow:    make(chan struct{}, 1),
		changed:      make(chan struct{}),
	}
	m.d = newWorkerDeps(opts, m)
	m.d.allocs.all = m.allocations
	if err := m.d.allocs.open(opts.RootDir); err != nil {
		return nil, err
	}
	return m, nil
}

// Run relists the runtime and drives workers until ctx ends, then waits for
// the workers to return. Pods keep running when knode stops, as with the kubelet.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.ctx = ctx
	for uid := range m.records {
		if m.declaredLocked(uid) {
			m.ensureWorkerLocked(uid)
		}
	}
	m.mu.Unlock()
	if es, ok := m.opts.Runtime.(EventSource); ok {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.watchEvents(ctx, es)
		}()
	}
	m.relistLoop(ctx)
	m.wg.Wait()
}

// SetPods replaces everything one source declares. Pods that disappear are
// terminated; new ones start; the first call marks the source ready.
//
// A pod with a deletionTimestamp (an API pod being deleted) is no longer
// desired: it is stopped with its deletionGracePeriodSeconds. Each pod's
// kubernetes.io/config.source is set to source (the pods are the
// manager's from here on), so an API object cannot pass for a static pod.
func (m *Manager) SetPods(source string, pods []*v1.Pod) {
	podsource.Stamp(source, pods)
	next := make(map[types.UID]*v1.Pod, len(pods))
	deleting := map[types.UID]*v1.Pod{}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range pods {
		// UID, namespace and names become host paths: check them before any
		// worker builds one (the API server never validates a UID's form).
		if err := podpath.Check(p); err != nil {
			m.log.Error("pod refused: a field knode builds host paths from is invalid", "source", source, "pod", p.Namespace+"/"+p.Name, "err", err)
			continue
		}
		if p.DeletionTimestamp != nil {
			if p.DeletionGracePeriodSeconds != nil {
				g := *p.DeletionGracePeriodSeconds
				m.recordLocked(p.UID).deletionGrace = &g
			}
			deleting[p.UID] = p
			continue
		}
		next[p.UID] = p
	}
	for uid, r := range m.records {
		if _, was := r.declared[source]; was && next[uid] == nil {
			delete(r.declared, source)
			if r.worker != nil {
				r.worker.wake()
			}
		}
		// A pod the source still lists, with its deletion requested, holds
		// what it was admitted with until its worker has stopped it (the
		// kubelet's pod manager keeps it); one no source lists does not.
		switch d := deleting[uid]; {
		case d != nil && r.desired() == nil:
			r.stopping, r.stoppingSource = d, source
		case r.stoppingSource == source:
			r.stopping, r.stoppingSource = nil, ""
		}
	}
	// Only the workers of pods this update adds or changes sync now, as the
	// kubelet's config mux dispatches only ADD/UPDATE: a source sends its
	// whole set on every change, and waking every worker made one new
	// manifest cost two runtime lists per pod on the node before its
	// sandbox started. The others keep their own resync timers.
	var changed []types.UID
	for uid, p := range next {
		r := m.recordLocked(uid)
		if old := r.declared[source]; old == nil || r.worker == nil || !equality.Semantic.DeepEqual(old, p) {
			changed = append(changed, uid)
		}
		r.declared[source] = p
		r.stopping, r.stoppingSource = nil, ""
	}
	m.sourcesReady[source] = true
	m.podsChangedLocked()
	for _, uid := range changed {
		m.ensureWorkerLocked(uid)
	}
	m.wakeRelist()
}

// Pods returns copies of the pods knode manages with their live status,
// sorted by namespace and name.
func (m *Manager) Pods() []*v1.Pod {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*v1.Pod, 0, len(m.records))
	for uid, r := range m.records {
		if pod := r.desired(); pod != nil {
			out = append(out, m.withStatusLocked(uid, pod))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// GetPod finds a managed pod by namespace and name.
func (m *Manager) GetPod(namespace, name string) (*v1.Pod, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for uid, r := range m.records {
		if pod := r.desired(); pod != nil && pod.Namespace == namespace && pod.Name == name {
			return m.withStatusLocked(uid, pod), true
		}
	}
	return nil, false
}

// SyncLoopHealth reports when the relist loop last ran and last succeeded,
// and its last error: a stale attempt means the loop is stuck, an error that
// the runtime is unreachable.
func (m *Manager) SyncLoopHealth() (lastAttempt, lastSuccess time.Time, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.lastRelistAttempt, m.lastRelist, m.relistErr
}

// declaredLocked reports whether a source declares uid.
func (m *Manager) declaredLocked(uid types.UID) bool {
	r := m.records[uid]
	return r != nil && len(r.declared) > 0
}

func (m *Manager) allSourcesReadyLocked() bool {
	for _, s := range m.expected {
		if !m.sourcesReady[s] {
			return false
		}
	}
	return true
}

// DockershimDependentPods counts managed pods that mount the Docker socket.
func (m *Manager) DockershimDependentPods() int {
	n := 0
	for _, p := range m.Pods() {
		if _, ok := MountsDockerSocket(p); ok {
			n++
		}
	}
	return n
}

// PodsVersion changes whenever the answer of Pods changes.
func (m *Manager) PodsVersion() uint64 { return m.version.Load() }

// PodsChanged returns a channel closed at the next change of Pods' answer,
// so a status reporter writes a change at once instead of at its next poll.
func (m *Manager) PodsChanged() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *Manager) podsChangedLocked() {
	m.version.Add(1)
	close(m.changed)
	m.changed = make(chan struct{})
}
