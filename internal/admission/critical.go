package admission

import (
	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/podsource"
)

// systemCriticalPriority is the kubelet's scheduling.SystemCriticalPriority
// (2 billion), the floor of the system-*-critical priority classes.
const systemCriticalPriority = 2 * 1000000000

// IsCritical is the kubelet's kubelettypes.IsCriticalPod: static and
// mirror pods, and pods with a priority of system-cluster-critical or
// above.
func IsCritical(pod *v1.Pod) bool {
	if podsource.IsStatic(pod) || podsource.IsMirror(pod) {
		return true
	}
	return pod.Spec.Priority != nil && *pod.Spec.Priority >= systemCriticalPriority
}
