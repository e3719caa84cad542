package pods

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

func conditionOf(st *v1.PodStatus, t v1.PodConditionType) v1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c
		}
	}
	return v1.PodCondition{}
}

// The kubelet's init container statuses and condition messages, which the
// e2e InitContainer conformance specs compare exactly.
func TestInitContainerReadyAndConditionMessages(t *testing.T) {
	f := newFixture(t)
	w := f.worker(testPod(v1.RestartPolicyAlways, "init1", "init2"))
	st := f.sync(w)
	for _, want := range []struct {
		t               v1.PodConditionType
		reason, message string
	}{
		{v1.PodInitialized, "ContainersNotInitialized", "containers with incomplete status: [init1 init2]"},
		{v1.ContainersReady, "ContainersNotReady", "containers with unready status: [app]"},
		{v1.PodReady, "ContainersNotReady", "containers with unready status: [app]"},
	} {
		if c := conditionOf(st, want.t); c.Status != v1.ConditionFalse || c.Reason != want.reason || c.Message != want.message {
			t.Errorf("%s: %s %q %q, want False %q %q", want.t, c.Status, c.Reason, c.Message, want.reason, want.message)
		}
	}

	f.exit("init1", 0)
	st = f.sync(w)
	if !st.InitContainerStatuses[0].Ready {
		t.Errorf("init1 succeeded but is not ready: %+v", st.InitContainerStatuses[0])
	}
	if c := conditionOf(st, v1.PodInitialized); c.Message != "containers with incomplete status: [init2]" {
		t.Errorf("PodInitialized message %q after init1 succeeded", c.Message)
	}

	f.exit("init2", 0)
	st = f.sync(w)
	if c := conditionOf(st, v1.PodInitialized); c.Status != v1.ConditionTrue || c.Message != "" || c.Reason != "" {
		t.Errorf("PodInitialized after both init containers: %+v", c)
	}
	for i, cs := range st.InitContainerStatuses {
		if !cs.Ready {
			t.Errorf("init container %d not ready after it succeeded", i)
		}
	}
}

// A failed init container is not ready.
func TestFailedInitContainerIsNotReady(t *testing.T) {
	f := newFixture(t)
	w := f.worker(testPod(v1.RestartPolicyNever, "init1"))
	f.sync(w)
	f.exit("init1", 1)
	st := f.sync(w)
	if st.InitContainerStatuses[0].Ready {
		t.Errorf("failed init container reported ready: %+v", st.InitContainerStatuses[0])
	}
}

// The status and its conditions say which generation of the spec they
// answer (the e2e "Pods Extended ... pod generation" specs).
func TestObservedGeneration(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	pod.Generation = 3
	st := f.sync(f.worker(pod))
	if st.ObservedGeneration != 3 {
		t.Errorf("status.observedGeneration %d, want 3", st.ObservedGeneration)
	}
	for _, c := range st.Conditions {
		if c.ObservedGeneration != 3 {
			t.Errorf("condition %s observedGeneration %d, want 3", c.Type, c.ObservedGeneration)
		}
	}
}
