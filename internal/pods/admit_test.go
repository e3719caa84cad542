package pods

import (
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
)

type refusal struct{ reason, message string }

func (r refusal) Error() string  { return r.message }
func (r refusal) Reason() string { return r.reason }

// TestAdmitRefusesBeforeAnythingRuns: a pod an admission check refuses
// ends Failed with the check's reason and message, and no sandbox or
// container of it is ever created; a check that passes lets it run.
func TestAdmitRefusesBeforeAnythingRuns(t *testing.T) {
	f := newFixture(t)
	calls := 0
	f.m.d.Admit = []func(*v1.Pod) error{
		func(*v1.Pod) error { calls++; return nil },
		func(p *v1.Pod) error {
			if p.Spec.ActiveDeadlineSeconds != nil {
				return refusal{"PodFieldNotSupported", "spec.activeDeadlineSeconds: not supported"}
			}
			return nil
		},
	}
	pod := testPod(v1.RestartPolicyAlways)
	d := int64(5)
	pod.Spec.ActiveDeadlineSeconds = &d
	w := f.worker(pod)
	for range 2 {
		st := f.sync(w)
		if st.Phase != v1.PodFailed || st.Reason != "PodFieldNotSupported" || st.Message != "spec.activeDeadlineSeconds: not supported" {
			t.Fatalf("status %s %s %q, want Failed PodFieldNotSupported", st.Phase, st.Reason, st.Message)
		}
	}
	f.rt.Lock()
	sandboxes := len(f.rt.Sandboxes)
	f.rt.Unlock()
	if _, total := f.count("app"); total != 0 || sandboxes != 0 {
		t.Fatalf("a refused pod got %d sandboxes and %d containers", sandboxes, total)
	}
	if calls != 1 {
		t.Errorf("the checks ran %d times; admission is once", calls)
	}

	f2 := newFixture(t)
	f2.m.d.Admit = f.m.d.Admit
	ok := testPod(v1.RestartPolicyAlways)
	f2.sync(f2.worker(ok))
	if running, _ := f2.count("app"); running != 1 {
		t.Fatal("an admitted pod did not run")
	}
}

// TestAdmitErrorWithoutReasonIsRetried: a check that cannot decide (no
// Reason) fails the sync, not the pod.
func TestAdmitErrorWithoutReasonIsRetried(t *testing.T) {
	f := newFixture(t)
	fail := true
	f.m.d.Admit = []func(*v1.Pod) error{func(*v1.Pod) error {
		if fail {
			return errors.New("not yet")
		}
		return nil
	}}
	pod := testPod(v1.RestartPolicyAlways)
	w := f.worker(pod)
	f.sync(w)
	if w.rejected != nil {
		t.Fatalf("a retryable error rejected the pod: %+v", w.rejected)
	}
	fail = false
	f.sync(w)
	if running, _ := f.count("app"); running != 1 {
		t.Fatal("the pod did not run once the check passed")
	}
}
