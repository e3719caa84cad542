package pods

import (
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// A preempted pod is stopped by its worker and ends Failed with the
// reason and message asked; Preempt returns once it is stopped, and the
// pod no longer counts against the node.
func TestPreemptedPodStopsAndFails(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	// One the API object has (a taint manager's): replaced, not doubled.
	pod.Status.Conditions = []v1.PodCondition{{Type: v1.DisruptionTarget, Status: v1.ConditionFalse, Reason: "DeletionByTaintManager"}}
	w := f.worker(pod)
	f.sync(w)
	if err := f.m.Preempt(pod, "Preempting", "Preempted in order to admit critical pod", "preempted"); err == nil {
		t.Fatal("a pod without a worker was preempted")
	}
	f.m.mu.Lock()
	f.m.recordLocked(pod.UID).worker = w
	f.m.mu.Unlock()
	f.m.markAdmitted(pod.UID)
	f.events.take()

	select {
	case <-w.wakeCh: // an earlier wake-up, not the order's
	default:
	}
	errc := make(chan error, 1)
	go func() {
		errc <- f.m.Preempt(pod, "Preempting", "Preempted in order to admit critical pod", "preempted")
	}()
	select {
	case <-w.wakeCh: // the order is given
	case <-time.After(30 * time.Second):
		t.Fatal("Preempt did not wake the pod's worker")
	}
	st := f.sync(w)
	if err := <-errc; err != nil {
		t.Fatalf("Preempt: %v", err)
	}
	if running, _ := f.count("app"); running != 0 {
		t.Fatal("a preempted pod still runs")
	}
	if st.Phase != v1.PodFailed || st.Reason != "Preempting" || st.Message != "Preempted in order to admit critical pod" {
		t.Fatalf("status %s %s %q", st.Phase, st.Reason, st.Message)
	}
	if c := disruption(st); c == nil || c.Status != v1.ConditionTrue || c.Reason != v1.PodReasonTerminationByKubelet || c.Message != "preempted" {
		t.Errorf("DisruptionTarget condition %+v", c)
	}
	if got := f.events.take(); !slices.Contains(got, "Warning Preempting: Preempted in order to admit critical pod") {
		t.Errorf("events %q", got)
	}
	if others := f.m.admittedOthers(""); len(others) != 0 {
		t.Errorf("the preempted pod still counts against the node: %d pods", len(others))
	}
	f.sync(w)
	if running, _ := f.count("app"); running != 0 {
		t.Fatal("a preempted pod was restarted")
	}
}

func disruption(st *v1.PodStatus) *v1.PodCondition {
	var out *v1.PodCondition
	for i := range st.Conditions {
		if st.Conditions[i].Type == v1.DisruptionTarget {
			if out != nil {
				return &v1.PodCondition{Message: "two DisruptionTarget conditions"}
			}
			out = &st.Conditions[i]
		}
	}
	return out
}
