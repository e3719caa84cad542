package agent

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"knode.io/knode/internal/admission"
	"knode.io/knode/internal/nodeinfo"
)

// nodeResources is the node's capacity and allocatable as the node status
// reports them and admission counts them: CPUs, memory and maxPods, then
// the device-plugin resources. A resource's allocatable is never below
// what is already allocated of it, as the kubelet's
// sanitizeNodeAllocatable keeps it.
func (a *agent) nodeResources() (capacity, allocatable v1.ResourceList) {
	capacity = v1.ResourceList{
		v1.ResourceCPU:    *resource.NewQuantity(int64(nodeinfo.CPUs()), resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(a.memory, resource.BinarySI),
		v1.ResourcePods:   *resource.NewQuantity(int64(a.cfg.MaxPods), resource.DecimalSI),
	}
	allocatable = capacity.DeepCopy()
	if a.devices != nil {
		for _, r := range a.devices.Resources() {
			allocated := int64(0)
			for _, al := range r.Allocations {
				allocated += int64(len(al.Devices))
			}
			capacity[v1.ResourceName(r.Name)] = *resource.NewQuantity(r.Capacity, resource.DecimalSI)
			allocatable[v1.ResourceName(r.Name)] = *resource.NewQuantity(max(r.Allocatable, allocated), resource.DecimalSI)
		}
	}
	return capacity, allocatable
}

// admission is the kubelet's chain of admit handlers, in its order, for
// the handlers knode has (memory pressure and devices are checked by the
// workers before it).
func (a *agent) admission() admission.Handler {
	var nodes admission.NodeSource = &admission.LocalNode{
		Name:   a.cfg.NodeName,
		Labels: nodeinfo.Labels(a.cfg.NodeName, a.cfg.NodeLabels),
		Allocatable: func() v1.ResourceList {
			_, alloc := a.nodeResources()
			return alloc
		},
	}
	if a.node != nil {
		nodes = a.node
	}
	log := a.log.With("component", "admission")
	return admission.Chain{
		&admission.Predicates{Nodes: nodes, Warn: func(pod *v1.Pod, reason, message string) {
			log.Warn("critical pod admitted although the node is short of resources; knode does not evict other pods for it",
				"pod", pod.Namespace+"/"+pod.Name, "reason", reason, "message", message)
		}},
	}
}
