package admission

import (
	"fmt"
	"math"
	"strings"

	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"

	"knode.io/knode/internal/qos"
)

// The kubelet's preemption strings (pkg/kubelet/preemption, events.PreemptContainer,
// lifecycle.UnexpectedAdmissionError): the reason and message a preempted
// pod ends Failed with, and the refusal of a critical pod no set of pods
// can make room for.
const (
	ReasonPreempting         = "Preempting"
	MessagePreempted         = "Preempted in order to admit critical pod"
	ReasonUnexpectedAdmisson = "UnexpectedAdmissionError"
	// ConditionPreempted is the message of the DisruptionTarget condition
	// (reason TerminationByKubelet) a preempted pod gets.
	ConditionPreempted = "Pod was preempted by Kubelet to accommodate a critical pod."
)

// Preempter stops a pod chosen to make room for a critical one, as the
// kubelet's killPodNow: the pod's containers are stopped with its own
// grace period and it ends Failed with reason and message, and a
// DisruptionTarget condition (reason TerminationByKubelet) with
// condition's message. Preempt returns once they are stopped, or with an
// error when that does not happen in the kubelet's time; the pod is then
// still stopped, later.
type Preempter interface {
	Preempt(pod *v1.Pod, reason, message, condition string) error
}

// Preemptable is the kubelet's kubetypes.Preemptable: a critical pod may
// preempt any pod that is not critical, and a pod may preempt one of lower
// priority when both have one.
func Preemptable(preemptor, preemptee *v1.Pod) bool {
	if IsCritical(preemptor) && !IsCritical(preemptee) {
		return true
	}
	return preemptor.Spec.Priority != nil && preemptee.Spec.Priority != nil && *preemptor.Spec.Priority > *preemptee.Spec.Priority
}

// requirement is an amount of a resource the node lacks for a pod (the
// kubelet's admissionRequirement): CPU in milli-units, pods in pods, the
// rest in units.
type requirement struct {
	name     v1.ResourceName
	quantity int64
}

type requirements []requirement

// String is the kubelet's toString, which its refusal message carries.
func (r requirements) String() string {
	var b strings.Builder
	b.WriteString("[")
	for _, req := range r {
		fmt.Fprintf(&b, "(res: %v, q: %d), ", req.name, req.quantity)
	}
	return b.String() + "]"
}

// requestOf is the kubelet's resource.GetResourceRequest: a pod counts as
// one pod; otherwise its requests as the scheduler counts them, plus its
// overhead when that is not zero; CPU in milli-units.
func requestOf(pod *v1.Pod, name v1.ResourceName) int64 {
	if name == v1.ResourcePods {
		return 1
	}
	q := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{ExcludeOverhead: true})[name]
	if o, ok := pod.Spec.Overhead[name]; ok && !q.IsZero() {
		q.Add(o)
	}
	return Saturated(q, name == v1.ResourceCPU)
}

// subtract is what remains of r once pods are gone.
func (r requirements) subtract(pods ...*v1.Pod) requirements {
	var out requirements
	for _, req := range r {
		left := req.quantity
		for _, p := range pods {
			left -= requestOf(p, req.name)
			if left <= 0 {
				break
			}
		}
		if left > 0 {
			out = append(out, requirement{req.name, left})
		}
	}
	return out
}

// distance is how far a pod's requests are from meeting r: the squared
// fraction of each requirement left unmet, summed, so that each resource
// weighs the same whatever its unit.
func (r requirements) distance(pod *v1.Pod) float64 {
	d := 0.0
	for _, req := range r {
		if left := float64(req.quantity - requestOf(pod, req.name)); left > 0 {
			d += math.Pow(left/float64(req.quantity), 2)
		}
	}
	return d
}

// podsToPreempt is the kubelet's getPodsToPreempt: among the pods the
// preemptor may preempt, the fewest (then the smallest) that free what is
// required, taking from BestEffort pods first, then Burstable, then
// Guaranteed — each class only what the cheaper classes, all of them
// gone, leave unmet.
func podsToPreempt(preemptor *v1.Pod, pods []*v1.Pod, reqs requirements) ([]*v1.Pod, error) {
	var bestEffort, burstable, guaranteed []*v1.Pod
	for _, p := range pods {
		if !Preemptable(preemptor, p) {
			continue
		}
		switch qos.Class(p) {
		case v1.PodQOSBestEffort:
			bestEffort = append(bestEffort, p)
		case v1.PodQOSBurstable:
			burstable = append(burstable, p)
		case v1.PodQOSGuaranteed:
			guaranteed = append(guaranteed, p)
		}
	}
	all := joined(bestEffort, burstable, guaranteed)
	if unmet := reqs.subtract(all...); len(unmet) > 0 {
		return nil, fmt.Errorf("no set of running pods found to reclaim resources: %v", unmet)
	}
	guaranteedOut, err := byDistance(guaranteed, reqs.subtract(joined(bestEffort, burstable)...))
	if err != nil {
		return nil, err
	}
	burstableOut, err := byDistance(burstable, reqs.subtract(joined(bestEffort, guaranteedOut)...))
	if err != nil {
		return nil, err
	}
	bestEffortOut, err := byDistance(bestEffort, reqs.subtract(joined(burstableOut, guaranteedOut)...))
	if err != nil {
		return nil, err
	}
	return joined(bestEffortOut, burstableOut, guaranteedOut), nil
}

// joined is a new slice of the lists in order.
func joined(lists ...[]*v1.Pod) []*v1.Pod {
	var out []*v1.Pod
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// byDistance is the kubelet's getPodsToPreemptByDistance: repeatedly the
// pod closest to meeting what is left (on a tie the one with the smaller
// request), until nothing is.
func byDistance(pods []*v1.Pod, reqs requirements) ([]*v1.Pod, error) {
	left := append([]*v1.Pod(nil), pods...)
	var out []*v1.Pod
	for len(reqs) > 0 {
		if len(left) == 0 {
			return nil, fmt.Errorf("no set of running pods found to reclaim resources: %v", reqs)
		}
		best, bestDist := 0, float64(len(reqs)+1)
		for i, p := range left {
			if d := reqs.distance(p); d < bestDist || d == bestDist && smallerRequest(p, left[best]) {
				best, bestDist = i, d
			}
		}
		reqs = reqs.subtract(left[best])
		out = append(out, left[best])
		left[best] = left[len(left)-1]
		left = left[:len(left)-1]
	}
	return out, nil
}

// smallerRequest: a asks for less memory than b, or as much memory and no
// more CPU (the kubelet's smallerResourceRequest; equal counts as smaller).
func smallerRequest(a, b *v1.Pod) bool {
	for _, name := range []v1.ResourceName{v1.ResourceMemory, v1.ResourceCPU} {
		ra, rb := requestOf(a, name), requestOf(b, name)
		if ra != rb {
			return ra < rb
		}
	}
	return true
}

// preempt is the kubelet's CriticalPodAdmissionHandler for a critical pod
// whose only failures are shortages: it picks the pods to preempt, stops
// them, and admits the pod — even when stopping one failed, as the
// kubelet does (the pod is still being stopped). When no set of pods frees
// enough, the pod is refused as the kubelet refuses it.
func (p *Predicates) preempt(pod *v1.Pod, shortages []failure, others []*v1.Pod) (bool, string, string) {
	reqs := make(requirements, 0, len(shortages))
	for _, f := range shortages {
		reqs = append(reqs, requirement{f.resource, insufficient(f)})
	}
	if p.Preempt == nil {
		others = nil // nothing can be stopped
	}
	victims, err := podsToPreempt(pod, others, reqs)
	if err != nil {
		return false, ReasonUnexpectedAdmisson, fmt.Sprintf("Unexpected error while attempting to recover from admission failure: preemption: error finding a set of pods to preempt: %v", err)
	}
	log := p.logger()
	for _, v := range victims {
		log.Info("preempting a pod to admit a critical pod", "pod", v.Namespace+"/"+v.Name, "requestingPod", pod.Namespace+"/"+pod.Name, "insufficientResources", reqs.String())
		if err := p.Preempt.Preempt(v, ReasonPreempting, MessagePreempted, ConditionPreempted); err != nil {
			log.Error("failed to preempt a pod", "pod", v.Namespace+"/"+v.Name, "err", err)
		}
	}
	return true, "", ""
}

// insufficient is the kubelet's GetInsufficientAmount, requested less
// what is free, computed without wrapping on saturated values.
func insufficient(f failure) int64 {
	free := f.capacity - f.used // both in [0, MaxInt64]: no wrap
	if free < 0 && f.requested > math.MaxInt64+free {
		return math.MaxInt64
	}
	return f.requested - free
}
