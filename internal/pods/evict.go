package pods

import (
	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/podsource"
	"knode.io/knode/internal/qos"
)

// refusedUnderPressure is the kubelet's admission rule: a BestEffort pod
// that has not started is refused while the node is under memory pressure
// (static pods, critical to the kubelet, are not).
func (d *admission) refusedUnderPressure(pod *v1.Pod, rp *runtimePod) bool {
	if d.Pressure == nil || rp.newestSandbox() != nil || qos.Class(pod) != v1.PodQOSBestEffort || podsource.IsStatic(pod) {
		return false
	}
	under, err := d.Pressure.MemoryPressure()
	return err == nil && under
}
