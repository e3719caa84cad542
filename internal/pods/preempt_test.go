package pods

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// A preempted pod is stopped by its worker and ends Failed with the
// reason and message asked; Preempt returns once it is stopped, and the
// pod no longer counts against the node.
func TestPreemptedPodStopsAndFails(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	w := f.worker(pod)
	f.sync(w)
	if err := f.m.Preempt(pod, "Preempting", "Preempted in order to admit critical pod"); err == nil {
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
	go func() { errc <- f.m.Preempt(pod, "Preempting", "Preempted in order to admit critical pod") }()
	<-w.wakeCh // the order is given
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
