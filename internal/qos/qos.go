// Package qos is the kubelet's quality-of-service arithmetic for a pod, as
// pure functions: its QoS class (pkg/apis/core/v1/helper/qos), the
// oom_score_adj of its containers (pkg/kubelet/qos/policy.go), the limits
// of its pod-level cgroup and where that cgroup sits in the kubelet's
// hierarchy (pkg/kubelet/cm: kubepods, kubepods/burstable,
// kubepods/besteffort, pod<uid>).
package qos

import (
	"path"

	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Class is the pod's QoS class as the kubelet computes it: from the
// pod-level resources when set, else from every container's cpu and memory
// requests and limits (a request left out counts as equal to its limit,
// as API defaulting makes it; static pods are not defaulted by knode).
func Class(pod *v1.Pod) v1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	if pod.Spec.Resources != nil && resourcehelper.IsPodLevelResourcesSet(pod) {
		return requirementsClass(pod.Spec.Resources)
	}
	var class v1.PodQOSClass
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			c := requirementsClass(&list[i].Resources)
			switch {
			case c == v1.PodQOSBurstable:
				return c
			case class == "":
				class = c
			case class != c:
				return v1.PodQOSBurstable
			}
		}
	}
	if class == "" {
		return v1.PodQOSBestEffort
	}
	return class
}

func requirementsClass(r *v1.ResourceRequirements) v1.PodQOSClass {
	if len(r.Requests) == 0 && len(r.Limits) == 0 {
		return v1.PodQOSBestEffort
	}
	var class v1.PodQOSClass
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		req, hasReq := r.Requests[name]
		lim := r.Limits[name]
		if !hasReq {
			req = lim
		}
		var c v1.PodQOSClass
		switch {
		case !req.Equal(lim):
			return v1.PodQOSBurstable
		case req.IsZero():
			c = v1.PodQOSBestEffort
		default:
			c = v1.PodQOSGuaranteed
		}
		if class == "" {
			class = c
		} else if class != c {
			return v1.PodQOSBurstable
		}
	}
	return class
}

// WithDefaultRequests returns pod itself if every container that has a
// limit also has its request, else a copy where the missing requests are
// the limits, as the API server's defaulting sets them. knode takes
// static pods as written; the kubelet defaults them.
func WithDefaultRequests(pod *v1.Pod) *v1.Pod {
	missing := func(c *v1.Container) bool {
		for name := range c.Resources.Limits {
			if _, ok := c.Resources.Requests[name]; !ok {
				return true
			}
		}
		return false
	}
	need := false
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			need = need || missing(&list[i])
		}
	}
	if !need {
		return pod
	}
	p := pod.DeepCopy()
	for _, list := range [][]v1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range list {
			c := &list[i]
			for name, q := range c.Resources.Limits {
				if _, ok := c.Resources.Requests[name]; !ok {
					if c.Resources.Requests == nil {
						c.Resources.Requests = v1.ResourceList{}
					}
					c.Resources.Requests[name] = q.DeepCopy()
				}
			}
		}
	}
	return p
}

// The kubelet's cgroup names beneath the cgroup root.
const (
	PodsCgroup       = "kubepods"
	BurstableCgroup  = "burstable"
	BestEffortCgroup = "besteffort"
)

// ClassCgroup is the cgroup of a QoS class beneath root: kubepods for
// Guaranteed pods, kubepods/burstable and kubepods/besteffort.
func ClassCgroup(root string, class v1.PodQOSClass) string {
	switch class {
	case v1.PodQOSBurstable:
		return path.Join("/", root, PodsCgroup, BurstableCgroup)
	case v1.PodQOSBestEffort:
		return path.Join("/", root, PodsCgroup, BestEffortCgroup)
	}
	return path.Join("/", root, PodsCgroup)
}

// PodCgroup is the pod's own cgroup, pod<uid> beneath its class's: the
// CgroupParent of its sandbox.
func PodCgroup(root string, pod *v1.Pod) string {
	return path.Join(ClassCgroup(root, Class(pod)), "pod"+string(pod.UID))
}
