package qos

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	"knode.io/knode/internal/cgroups"
)

// The kubelet's CFS arithmetic (pkg/kubelet/cm/helpers_linux.go).
const (
	MinShares      = 2
	MaxShares      = 262144
	sharesPerCPU   = 1024
	milliPerCPU    = 1000
	QuotaPeriod    = 100000 // µs
	minQuotaPeriod = 1000
)

// MilliCPUToShares is the kubelet's: 2 for no request, then 1024 per CPU,
// within [2, 262144].
func MilliCPUToShares(milliCPU int64) uint64 {
	if milliCPU == 0 {
		return MinShares
	}
	// Compared before multiplying: a request of 2^53 CPUs would wrap.
	if milliCPU >= MaxShares*milliPerCPU/sharesPerCPU {
		return MaxShares
	}
	return uint64(min(max(milliCPU*sharesPerCPU/milliPerCPU, MinShares), MaxShares))
}

// CPUShares is MilliCPUToShares of a CPU quantity, compared as a quantity
// first: one too large for milli-units in an int64 would wrap negative.
func CPUShares(q resource.Quantity) int64 {
	if q.Cmp(*resource.NewMilliQuantity(MaxShares*milliPerCPU/sharesPerCPU, resource.DecimalSI)) >= 0 {
		return MaxShares
	}
	return int64(MilliCPUToShares(q.MilliValue()))
}

// MilliCPUToQuota is the kubelet's CFS quota for a period: 0 for no limit,
// else at least 1 ms.
func MilliCPUToQuota(milliCPU, period int64) int64 {
	if milliCPU == 0 {
		return 0
	}
	return max(milliCPU*period/milliPerCPU, minQuotaPeriod)
}

// PodResources are the limits of the pod's own cgroup as the kubelet's
// ResourceConfigForPod sets them (CFS quota enforced, the default period):
// Guaranteed pods get shares, quota and a memory limit; Burstable pods
// shares, and a quota or memory limit only when every container (init
// containers included) or the pod itself declares that limit; BestEffort
// pods the minimum shares. Overhead is part of requests and limits;
// hugepages requests become hugetlb limits.
func PodResources(pod *v1.Pod) cgroups.Resources {
	pod = WithDefaultRequests(pod)
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	limits := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	cpuDeclared, memDeclared := true, true
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			l := list[i].Resources.Limits
			cpuDeclared = cpuDeclared && !quantity(l, v1.ResourceCPU).IsZero()
			memDeclared = memDeclared && !quantity(l, v1.ResourceMemory).IsZero()
		}
	}
	if pod.Spec.Resources != nil && resourcehelper.IsPodLevelResourcesSet(pod) {
		cpuDeclared = cpuDeclared || !quantity(pod.Spec.Resources.Limits, v1.ResourceCPU).IsZero()
		memDeclared = memDeclared || !quantity(pod.Spec.Resources.Limits, v1.ResourceMemory).IsZero()
	}
	cpuReq := quantity(reqs, v1.ResourceCPU)
	cpuLim := quantity(limits, v1.ResourceCPU)
	memLim := quantity(limits, v1.ResourceMemory)
	shares := MilliCPUToShares(cpuReq.MilliValue())
	quota := MilliCPUToQuota(cpuLim.MilliValue(), QuotaPeriod)
	period := uint64(QuotaPeriod)
	memory := memLim.Value()
	r := cgroups.Resources{HugePages: HugePageLimits(reqs), HugePagesExclusive: true}
	switch Class(pod) {
	case v1.PodQOSGuaranteed:
		r.CPUShares, r.CPUQuota, r.CPUPeriod, r.Memory = &shares, &quota, &period, &memory
	case v1.PodQOSBurstable:
		r.CPUShares = &shares
		if cpuDeclared {
			r.CPUQuota, r.CPUPeriod = &quota, &period
		}
		if memDeclared {
			r.Memory = &memory
		}
	default:
		min := uint64(MinShares)
		r.CPUShares = &min
	}
	return r
}

func quantity(l v1.ResourceList, name v1.ResourceName) *resource.Quantity {
	q := l[name]
	return &q
}

// HugePageLimits maps the hugepages-<size> resources of l to page size →
// bytes.
func HugePageLimits(l v1.ResourceList) map[int64]int64 {
	out := map[int64]int64{}
	for name, q := range l {
		size, ok := strings.CutPrefix(string(name), v1.ResourceHugePagesPrefix)
		if !ok {
			continue
		}
		pageSize, err := resource.ParseQuantity(size)
		if err != nil {
			continue
		}
		out[pageSize.Value()] += q.Value()
	}
	return out
}

// MemoryVolumeSize is the size of a memory-backed emptyDir's tmpfs as the
// kubelet's calculateEmptyDirMemorySize gives it: the node's allocatable
// memory, less when the pod's cgroup has a memory limit, less again when
// the volume's sizeLimit is smaller still.
func MemoryVolumeSize(pod *v1.Pod, sizeLimit *resource.Quantity, allocatableMemory int64) int64 {
	size := allocatableMemory
	if r := PodResources(pod); r.Memory != nil && *r.Memory > 0 && *r.Memory <= size {
		size = *r.Memory
	}
	if sizeLimit != nil && sizeLimit.Sign() > 0 && sizeLimit.Value() <= size {
		size = sizeLimit.Value()
	}
	return size
}
