package pods

import (
	"fmt"
	"math"
	"time"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/crispec"
)

// evictOrder is what was asked of a pod's worker when the node stops the
// pod for another reason than its spec: the reason and message it ends
// Failed with, and how.
type evictOrder struct {
	waiting
	// graceful stops the containers with the pod's own grace period (a
	// preemption, the kubelet's killPodNow without an override); otherwise
	// at once, as the kubelet's hard eviction.
	graceful bool
	// done, when set, is closed once the worker has stopped the pod.
	done chan struct{}
}

// grace is the grace period the pod's containers are stopped with.
func (e evictOrder) grace(pod *v1.Pod) int64 {
	if e.graceful {
		return crispec.GracePeriod(pod)
	}
	return 0
}

// stopped tells whoever waits that the pod is stopped.
func (e evictOrder) stopped() {
	if e.done != nil {
		close(e.done)
	}
}

// Preempt stops a pod to make room for a critical one, as the kubelet's
// CriticalPodAdmissionHandler does through killPodNow: the pod's worker
// records the event, stops its containers with the pod's own grace period
// and the pod ends Failed with reason and message, and a DisruptionTarget
// condition with condition's message. Preempt returns once
// the containers are stopped — the pod then no longer counts against the
// node — or with an error after the kubelet's wait (one and a half grace
// periods, at least 10 s), when the pod is still stopped, later.
func (m *Manager) Preempt(pod *v1.Pod, reason, message, condition string) error {
	done := make(chan struct{})
	m.mu.Lock()
	w := m.workerLocked(pod.UID)
	if w == nil {
		m.mu.Unlock()
		return fmt.Errorf("pod %s/%s (%s) has no worker", pod.Namespace, pod.Name, pod.UID)
	}
	if m.records[pod.UID].desired() == nil {
		// Already being stopped (no source declares it): its worker stops
		// it with the grace period it was given and takes no order.
		m.mu.Unlock()
		return nil
	}
	m.records[pod.UID].eviction = &evictOrder{waiting: waiting{reason: reason, message: message, disruption: condition}, graceful: true, done: done}
	w.wake()
	m.mu.Unlock()

	// A static pod's grace period is not validated: bounded here.
	grace := min(max(crispec.GracePeriod(pod), 0), math.MaxInt32)
	timeout := time.Duration(max(grace+grace/2, 10)) * time.Second
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		m.d.Events.Event(pod, v1.EventTypeWarning, "ExceededGracePeriod", "Container runtime did not kill the pod within specified grace period.")
		return fmt.Errorf("timeout waiting to kill pod %s/%s", pod.Namespace, pod.Name)
	}
	m.mu.Lock()
	if r := m.records[pod.UID]; r != nil {
		r.admitted = false
	}
	m.mu.Unlock()
	return nil
}

// withDisruption gives a pod the node stopped the kubelet's
// DisruptionTarget condition (reason TerminationByKubelet), in place of one
// the API object has.
func withDisruption(st, prev *v1.PodStatus, pod *v1.Pod, message string) {
	c := condition(prev, v1.DisruptionTarget, true, "")
	c.Reason, c.Message, c.ObservedGeneration = v1.PodReasonTerminationByKubelet, message, pod.Generation
	for i := range st.Conditions {
		if st.Conditions[i].Type == v1.DisruptionTarget {
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}
