package qos

import (
	"errors"
	"fmt"
	"math"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"

	"knode.io/knode/internal/cgroups"
)

// Cgroups keeps the kubelet's hierarchy beneath the cgroup root: kubepods
// limited to the node's allocatable (or capacity), kubepods/besteffort
// with the minimum CPU shares, kubepods/burstable with the shares of its
// pods' CPU requests, and each pod's own cgroup with PodResources.
type Cgroups struct {
	fs   *cgroups.Manager
	root string

	mu sync.Mutex
	// burstable is each Burstable pod's CPU request (millicores), summed
	// into the burstable cgroup's shares.
	burstable map[types.UID]int64
}

// NewCgroups manages the hierarchy beneath root (the kubelet's
// --cgroup-root, "/" by default).
func NewCgroups(fs *cgroups.Manager, root string) *Cgroups {
	return &Cgroups{fs: fs, root: root, burstable: map[types.UID]int64{}}
}

// Start makes kubepods with the node's limits — CPU shares and memory of
// pods (allocatable when enforced, else capacity) and huge pages — and the
// two QoS cgroups beneath it, whose huge pages are unbounded as the
// kubelet leaves them.
func (c *Cgroups) Start(pods v1.ResourceList) error {
	shares := MilliCPUToShares(quantity(pods, v1.ResourceCPU).MilliValue())
	r := cgroups.Resources{CPUShares: &shares, HugePages: HugePageLimits(pods)}
	if mem := quantity(pods, v1.ResourceMemory).Value(); mem > 0 {
		r.Memory = &mem
	}
	if err := c.fs.Set(ClassCgroup(c.root, v1.PodQOSGuaranteed), r); err != nil {
		return err
	}
	unbounded := map[int64]int64{}
	for size := range HugePageLimits(pods) {
		unbounded[size] = math.MaxInt64 / size * size
	}
	min := uint64(MinShares)
	if err := c.fs.Set(ClassCgroup(c.root, v1.PodQOSBestEffort), cgroups.Resources{CPUShares: &min, HugePages: unbounded}); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.setBurstableLocked(unbounded)
}

func (c *Cgroups) setBurstableLocked(hugePages map[int64]int64) error {
	var sum int64
	for _, m := range c.burstable {
		sum += m
	}
	shares := MilliCPUToShares(sum)
	return c.fs.Set(ClassCgroup(c.root, v1.PodQOSBurstable), cgroups.Resources{CPUShares: &shares, HugePages: hugePages})
}

// EnsurePod makes the pod's cgroup with its limits (the sandbox's
// CgroupParent) and, for a Burstable pod, counts its CPU request in the
// burstable cgroup's shares.
func (c *Cgroups) EnsurePod(pod *v1.Pod) error {
	if err := c.fs.Set(PodCgroup(c.root, pod), PodResources(pod)); err != nil {
		return fmt.Errorf("pod cgroup: %w", err)
	}
	if Class(pod) != v1.PodQOSBurstable {
		return nil
	}
	reqs := resourcehelper.PodRequests(WithDefaultRequests(pod), resourcehelper.PodResourcesOptions{})
	milli := quantity(reqs, v1.ResourceCPU).MilliValue()
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.burstable[pod.UID]; ok && old == milli {
		return nil
	}
	c.burstable[pod.UID] = milli
	return c.setBurstableLocked(nil)
}

// RemovePod removes the pod's cgroup once its containers are gone, and
// its share of the burstable cgroup.
func (c *Cgroups) RemovePod(pod *v1.Pod) error {
	c.mu.Lock()
	_, wasBurstable := c.burstable[pod.UID]
	delete(c.burstable, pod.UID)
	var err error
	if wasBurstable {
		err = c.setBurstableLocked(nil)
	}
	c.mu.Unlock()
	if !c.fs.Exists(PodCgroup(c.root, pod)) {
		return err
	}
	return errors.Join(err, c.fs.Remove(PodCgroup(c.root, pod)))
}
