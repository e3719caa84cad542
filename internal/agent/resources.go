package agent

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"knode.io/knode/internal/admission"
	"knode.io/knode/internal/cgroups"
	"knode.io/knode/internal/eviction"
	"knode.io/knode/internal/nodeinfo"
	"knode.io/knode/internal/qos"
)

// nodeBudget is what the node has and holds back, read once at start.
type nodeBudget struct {
	// capacity is CPUs, memory, maxPods, the root dir's filesystem and huge pages.
	capacity v1.ResourceList
	// reserved are kube-reserved and system-reserved; eviction is what the
	// hard eviction thresholds hold back.
	reserved []v1.ResourceList
	eviction v1.ResourceList
}

// readBudget measures the node's capacity and reads its reservations.
func (a *agent) readBudget(context.Context) error {
	cfg := a.cfg
	fsBytes, err := nodeinfo.FilesystemBytes(cfg.RootDir)
	if err != nil {
		return fmt.Errorf("root dir filesystem: %w", err)
	}
	capacity := v1.ResourceList{
		v1.ResourceCPU:              *resource.NewQuantity(int64(nodeinfo.CPUs()), resource.DecimalSI),
		v1.ResourceMemory:           *resource.NewQuantity(a.memory, resource.BinarySI),
		v1.ResourcePods:             *resource.NewQuantity(int64(cfg.MaxPods), resource.DecimalSI),
		v1.ResourceEphemeralStorage: *resource.NewQuantity(fsBytes, resource.BinarySI),
	}
	for name, q := range nodeinfo.HugePages("/sys/kernel/mm/hugepages") {
		capacity[name] = q
	}
	b := nodeBudget{capacity: capacity}
	for _, m := range []map[string]string{cfg.KubeReserved, cfg.SystemReserved} {
		r, err := nodeinfo.ParseReserved(m)
		if err != nil {
			return err
		}
		b.reserved = append(b.reserved, r)
	}
	thresholds, err := eviction.ParseMap(cfg.EvictionHard)
	if err != nil {
		return err
	}
	b.eviction = eviction.Reservation(thresholds, a.memory, fsBytes)
	a.budget = b
	return nil
}

// nodeResources is the node's capacity and allocatable as the node status
// reports them and admission counts them: capacity less kube-reserved,
// system-reserved and the hard eviction thresholds, then the device-plugin
// resources. A device resource's allocatable is never below what is
// already allocated of it, as the kubelet's sanitizeNodeAllocatable keeps it.
func (a *agent) nodeResources() (capacity, allocatable v1.ResourceList) {
	capacity = a.budget.capacity.DeepCopy()
	allocatable = nodeinfo.Allocatable(capacity, append(a.budget.reserved, a.budget.eviction)...)
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

// startCgroups makes the kubelet's kubepods hierarchy: kubepods limited to
// capacity less the reservations (the hard eviction thresholds are not
// part of it, as in the kubelet) with --enforce-node-allocatable=pods, to
// capacity without; the QoS cgroups beneath; the pods' own as they start.
func (a *agent) startCgroups(context.Context) error {
	fs, err := cgroups.New()
	if err != nil {
		return err
	}
	limits := a.budget.capacity
	if a.cfg.EnforcePods() {
		limits = nodeinfo.Allocatable(limits, a.budget.reserved...)
		// Allocatable takes huge pages from memory for the node status;
		// the cgroup's memory limit is capacity less the reservations.
		mem := a.budget.capacity[v1.ResourceMemory].DeepCopy()
		for _, r := range a.budget.reserved {
			if q, ok := r[v1.ResourceMemory]; ok {
				mem.Sub(q)
			}
		}
		limits[v1.ResourceMemory] = mem
	}
	if len(nodeinfo.HugePages("/sys/kernel/mm/hugepages")) > 0 && !fs.HugeTLB() {
		a.log.Warn("the hugetlb cgroup controller is not available: pods' huge page limits cannot be enforced (the kubelet skips them too)")
	}
	a.podCgroups = qos.NewCgroups(fs, a.cfg.CgroupRoot)
	if err := a.podCgroups.Start(limits); err != nil {
		return fmt.Errorf("kubepods cgroups: %w", err)
	}
	return nil
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
	return admission.Chain{
		&admission.Predicates{Nodes: nodes, Preempt: preempter{a}, Log: a.log.With("component", "admission")},
	}
}

// preempter stops pods for a critical one through the pod manager, which
// exists by the time the first pod is admitted (the manager is built with
// the admission chain).
type preempter struct{ a *agent }

func (p preempter) Preempt(pod *v1.Pod, reason, message, condition string) error {
	return p.a.mgr.Preempt(pod, reason, message, condition)
}
