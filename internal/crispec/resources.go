package crispec

import (
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Resources is the CRI resources of a container as created, for an
// in-place resize's UpdateContainerResources: the same builder, so a
// resized container and a new instance get the same cgroup values (and
// oom_score_adj, from the pod's QoS class and the node's memory).
func Resources(pod *v1.Pod, c *v1.Container, memoryCapacity int64) *runtimeapi.ContainerResources {
	return &runtimeapi.ContainerResources{Linux: linuxResources(pod, c, memoryCapacity)}
}
