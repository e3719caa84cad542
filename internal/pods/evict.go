package pods

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"knode.io/knode/internal/podsource"
)

// Evict stops a pod because the node is short of a resource: its worker
// kills it at once and the pod ends Failed with reason Evicted and message,
// as with the kubelet's hard eviction. It reports whether the pod was known.
func (m *Manager) Evict(uid types.UID, message string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.workers[uid]
	if w == nil {
		return false
	}
	m.evictions[uid] = waiting{reason: "Evicted", message: message}
	w.wake()
	return true
}

func (m *Manager) takeEviction(uid types.UID) (waiting, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ev, ok := m.evictions[uid]
	delete(m.evictions, uid)
	return ev, ok
}

// refusedUnderPressure is the kubelet's admission rule: a BestEffort pod
// that has not started is refused while the node is under memory pressure
// (static pods, critical to the kubelet, are not).
func (m *Manager) refusedUnderPressure(pod *v1.Pod, rp *runtimePod) bool {
	if m.opts.Pressure == nil || rp.newestSandbox() != nil || qosClass(pod) != v1.PodQOSBestEffort || podsource.IsStatic(pod) {
		return false
	}
	under, err := m.opts.Pressure.MemoryPressure()
	return err == nil && under
}
