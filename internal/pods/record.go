package pods

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
)

// podRecord is everything knode keeps about one pod UID, as the kubelet's
// podSyncStatus: created when a source declares the pod or the runtime
// shows it, dropped as a whole (workerDone) when it is gone from both. A
// new kind of per-pod state is a field here, not a map by UID elsewhere.
// Its fields are guarded by Manager.mu, except probes, files and alloc,
// which are set when the record is made, never replaced, and guarded by
// themselves or their owner (the pod's worker and probe goroutines use
// them without the manager's lock).
type podRecord struct {
	uid types.UID
	// declared is the pod's spec by the source that declares it; empty once
	// no source does (the pod is then stopped and removed).
	declared map[string]*v1.Pod
	// worker drives the pod; nil until Manager.Run starts it. Its own sync
	// state (start time, waiting reasons, back-off delays, when the
	// volumes were last refreshed) is the worker's alone.
	worker *worker
	// probes are the pod's probe workers and their verdicts.
	probes *podProbes
	// files is what its host files keep between writes: its API volumes'
	// tokens and content, what its /etc/hosts was written with.
	files *podFileState
	// alloc is the resources its containers were admitted with and were
	// given (in-place resize), checkpointed; guarded by allocations.mu.
	alloc *podAllocation
	// status is the last status the worker built; nil before its first sync.
	status *v1.PodStatus
	// annotations are what knode adds to the pod it serves (restored-from).
	annotations map[string]string
	// eviction is set when the eviction manager or a critical pod's
	// admission chose the pod, until its worker takes it.
	eviction *evictOrder
	// deletionGrace is the grace period an API deletion asked for.
	deletionGrace *int64
	// admitted is set once admission took the pod (or it was found
	// running, or allocated before a restart): it then counts against the
	// node's resources and ports.
	admitted bool
	// stopping is the pod as a source (stoppingSource) still lists it with
	// its deletion requested: its containers run until its worker has
	// stopped them, and it counts against the node until then, as the
	// kubelet's active pods include a pod whose termination was requested
	// until it is known terminated.
	stopping       *v1.Pod
	stoppingSource string
}

// recordLocked returns uid's record, making it if there is none.
func (m *Manager) recordLocked(uid types.UID) *podRecord {
	r := m.records[uid]
	if r == nil {
		r = &podRecord{uid: uid, declared: map[string]*v1.Pod{}, probes: newPodProbes(m.d.probes), files: newPodFileState()}
		r.alloc, r.admitted = m.d.allocs.newPod(uid)
		m.records[uid] = r
	}
	return r
}

// desired is the pod's spec as the sources declare it, nil if none does.
// A UID two sources declare is one pod, with the spec of the first source
// by name (the sources' pods were merged by UID before; which one's spec
// won was map order).
func (r *podRecord) desired() *v1.Pod {
	var first string
	var pod *v1.Pod
	for source, p := range r.declared {
		if pod == nil || source < first {
			first, pod = source, p
		}
	}
	return pod
}

// release frees what the record holds outside itself: its probe
// goroutines. Everything else goes with the record.
func (r *podRecord) release() {
	r.probes.stopAll()
}

func (m *Manager) withStatusLocked(uid types.UID, pod *v1.Pod) *v1.Pod {
	p := pod.DeepCopy()
	r := m.records[uid]
	if r == nil {
		p.Status = v1.PodStatus{Phase: v1.PodPending}
		return p
	}
	for k, v := range r.annotations {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
	if r.status != nil {
		p.Status = *r.status.DeepCopy()
	} else {
		p.Status = v1.PodStatus{Phase: v1.PodPending}
	}
	return p
}

func (m *Manager) desired(uid types.UID) *v1.Pod {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if r := m.records[uid]; r != nil {
		return r.desired()
	}
	return nil
}

// ensureWorkerLocked starts a worker for uid unless one runs.
func (m *Manager) ensureWorkerLocked(uid types.UID) {
	if m.ctx == nil {
		return // Run starts them
	}
	r := m.recordLocked(uid)
	if r.worker != nil {
		r.worker.wake()
		return
	}
	w := newWorker(m.d, r)
	r.worker = w
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		w.run(m.ctx)
	}()
}

// workerLocked is uid's worker, nil if none runs.
func (m *Manager) workerLocked(uid types.UID) *worker {
	if r := m.records[uid]; r != nil {
		return r.worker
	}
	return nil
}

// workerDone is called by a worker whose pod is gone from source and runtime.
// It returns false (and the worker goes on) if the pod came back meanwhile.
func (m *Manager) workerDone(uid types.UID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.records[uid]
	if r != nil && r.desired() != nil {
		return false
	}
	delete(m.records, uid)
	if r != nil {
		r.release()
	}
	m.release(uid)
	m.podsChangedLocked()
	return true
}

// release tells the components outside the manager that a pod is gone:
// the device manager frees its devices; cluster mode then deletes the API
// object.
func (m *Manager) release(uid types.UID) {
	m.opts.Devices.Release(uid)
	if m.opts.OnRemoved != nil {
		go m.opts.OnRemoved(uid)
	}
}

func (m *Manager) setStatus(uid types.UID, st *v1.PodStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.recordLocked(uid)
	if r.status == nil || !equality.Semantic.DeepEqual(r.status, st) {
		m.podsChangedLocked()
	}
	r.status = st
}

func (m *Manager) annotate(uid types.UID, key, value string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.recordLocked(uid)
	if r.annotations == nil {
		r.annotations = map[string]string{}
	}
	r.annotations[key] = value
	m.podsChangedLocked()
}

// graceFor returns the grace period an API deletion asked for, if any.
func (m *Manager) graceFor(uid types.UID) (int64, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if r := m.records[uid]; r != nil && r.deletionGrace != nil {
		return *r.deletionGrace, true
	}
	return 0, false
}

// terminating reports whether any pod is being stopped: it has a worker
// but no source declares it any more.
func (m *Manager) terminating() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, r := range m.records {
		if r.desired() == nil && r.worker != nil {
			return true
		}
	}
	return false
}

func (m *Manager) statusOf(uid types.UID) *v1.PodStatus {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if r := m.records[uid]; r != nil {
		return r.status
	}
	return nil
}

// Evict stops a pod because the node is short of a resource: its worker
// kills it at once and the pod ends Failed with reason Evicted and message,
// as with the kubelet's hard eviction, and with a DisruptionTarget
// condition of message disruption unless that is empty. It reports whether
// the pod was known.
func (m *Manager) Evict(uid types.UID, message, disruption string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.workerLocked(uid)
	if w == nil {
		return false
	}
	m.records[uid].eviction = &evictOrder{waiting: waiting{reason: "Evicted", message: message, disruption: disruption}}
	w.wake()
	return true
}

func (m *Manager) takeEviction(uid types.UID) (evictOrder, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.records[uid]
	if r == nil || r.eviction == nil {
		return evictOrder{}, false
	}
	ev := *r.eviction
	r.eviction = nil
	return ev, true
}
