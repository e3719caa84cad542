package pods

import (
	"k8s.io/apimachinery/pkg/types"
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
