package pods

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// A source sends its whole set on every change; only the pods that change
// sync at once. Waking every worker made each new manifest cost two runtime
// lists per pod on the node before the new pod's sandbox started.
func TestSetPodsWakesOnlyChangedPods(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	f.m.SetPods("file", []*v1.Pod{pod})
	w := f.newWorker(pod.UID)
	f.m.mu.Lock()
	f.m.ctx = context.Background() // as Run sets it: workers are woken, not started
	f.m.recordLocked(pod.UID).worker = w
	f.m.mu.Unlock()
	woken := func() bool {
		select {
		case <-w.wakeCh:
			return true
		default:
			return false
		}
	}

	f.m.SetPods("file", []*v1.Pod{pod.DeepCopy()}) // the same manifest, decoded again
	if woken() {
		t.Fatal("an unchanged pod's worker was woken")
	}
	changed := pod.DeepCopy()
	changed.Spec.Containers[0].Image = "example.com/other:1"
	f.m.SetPods("file", []*v1.Pod{changed})
	if !woken() {
		t.Fatal("a changed pod's worker was not woken")
	}
	f.m.SetPods("file", nil)
	if !woken() {
		t.Fatal("a removed pod's worker was not woken")
	}
}
