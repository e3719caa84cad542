package qos

import (
	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"

	"knode.io/knode/internal/podsource"
)

// The kubelet's OOM score adjustments.
const (
	guaranteedOOMScoreAdj = -997
	bestEffortOOMScoreAdj = 1000
	// systemNodeCritical is the priority class whose pods the kubelet
	// protects as Guaranteed ones.
	systemNodeCritical = "system-node-critical"
)

// OOMScoreAdj is the oom_score_adj of c's processes as the kubelet's
// GetContainerOOMScoreAdjust gives it: -997 for Guaranteed pods and
// system-node-critical ones, 1000 for BestEffort, and for Burstable
// 1000 - 1000*request/memoryCapacity, kept within [3, 999] (an extra
// share of a pod-level memory request spread over the containers; a
// sidecar no higher than the pod's smallest regular container).
func OOMScoreAdj(pod *v1.Pod, c *v1.Container, memoryCapacity int64) int64 {
	if pod.Spec.PriorityClassName == systemNodeCritical && critical(pod) {
		// Only node-critical pods are the last to be killed.
		return guaranteedOOMScoreAdj
	}
	switch Class(pod) {
	case v1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case v1.PodQOSBestEffort:
		return bestEffortOOMScoreAdj
	}
	if memoryCapacity <= 0 {
		return bestEffortOOMScoreAdj - 1
	}
	extra := int64(0)
	if resourcehelper.IsPodLevelRequestsSet(pod) {
		extra = remainingPodMemoryPerContainer(pod)
	}
	adj := 1000 - 1000*(memoryRequest(c)+extra)/memoryCapacity
	if isSidecar(pod, c) {
		if minAdj := 1000 - 1000*(minRegularMemory(pod)+extra)/memoryCapacity; adj > minAdj {
			adj = minAdj
		}
	}
	if adj < 1000+guaranteedOOMScoreAdj {
		return 1000 + guaranteedOOMScoreAdj
	}
	if adj == bestEffortOOMScoreAdj {
		return adj - 1
	}
	return adj
}

// critical is the kubelet's IsCriticalPod: static and mirror pods, and
// priorities from system-cluster-critical up.
func critical(pod *v1.Pod) bool {
	return podsource.IsStatic(pod) || podsource.IsMirror(pod) || (pod.Spec.Priority != nil && *pod.Spec.Priority >= 2*1000000000)
}

// memoryRequest is the container's memory request, its limit when the
// request is left out (API defaulting).
func memoryRequest(c *v1.Container) int64 {
	if q, ok := c.Resources.Requests[v1.ResourceMemory]; ok {
		return q.Value()
	}
	if q, ok := c.Resources.Limits[v1.ResourceMemory]; ok {
		return q.Value()
	}
	return 0
}

func isSidecar(pod *v1.Pod, c *v1.Container) bool {
	if c.RestartPolicy == nil || *c.RestartPolicy != v1.ContainerRestartPolicyAlways {
		return false
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == c.Name {
			return true
		}
	}
	return false
}

// minRegularMemory is the smallest memory request of the pod's regular
// containers.
func minRegularMemory(pod *v1.Pod) int64 {
	var out int64
	for i := range pod.Spec.Containers {
		if r := memoryRequest(&pod.Spec.Containers[i]); i == 0 || r < out {
			out = r
		}
	}
	return out
}

// remainingPodMemoryPerContainer is the pod-level memory request the
// containers' requests leave over, shared by all of its containers (init
// containers counted, as the kubelet counts them).
func remainingPodMemoryPerContainer(pod *v1.Pod) int64 {
	podReq := pod.Spec.Resources.Requests.Memory().Value()
	if podReq == 0 {
		return 0
	}
	n := int64(len(pod.Spec.Containers) + len(pod.Spec.InitContainers))
	containers := resourcehelper.AggregateContainerRequests(WithDefaultRequests(pod), resourcehelper.PodResourcesOptions{})
	return max(podReq-containers.Memory().Value(), 0) / n
}
