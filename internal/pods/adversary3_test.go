package pods

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAdversary3DeletedPodCountsUntilStopped: a tenant binds a pod to the
// node (spec.nodeName: no scheduler counts for it), deletes it with a long
// grace period and ignores SIGTERM, and binds another. The first one's
// containers run until its worker has stopped them: admission must still
// count it, as the kubelet counts a pod whose termination was requested
// until it is known terminated; otherwise each delete-and-recreate adds
// what the pod holds to the node again. Once no source lists it, it no
// longer counts (the kubelet's pod manager drops it); a preemption does
// not wait on a pod already stopping.
func TestAdversary3DeletedPodCountsUntilStopped(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	f.m.SetPods("api", []*v1.Pod{pod})
	w := f.newWorker(pod.UID)
	f.m.mu.Lock()
	f.m.recordLocked(pod.UID).worker = w
	f.m.mu.Unlock()
	f.m.markAdmitted(pod.UID)
	if others := f.m.admittedOthers(""); len(others) != 1 {
		t.Fatalf("the running pod counts as %d pods", len(others))
	}
	deleted := pod.DeepCopy()
	now := metav1.Now()
	grace := int64(3600)
	deleted.DeletionTimestamp, deleted.DeletionGracePeriodSeconds = &now, &grace
	f.m.SetPods("api", []*v1.Pod{deleted})
	others := f.m.admittedOthers("")
	if len(others) != 1 || others[0].UID != pod.UID {
		t.Fatalf("a pod being stopped counts as %d pods, want 1", len(others))
	}
	if err := f.m.Preempt(pod, "Preempting", "Preempted in order to admit critical pod", "preempted"); err != nil {
		t.Fatalf("preempting a pod already stopping: %v", err)
	}
	// The object gone from the API (a forced deletion): the kubelet's pod
	// manager no longer has it, and it no longer counts.
	f.m.SetPods("api", nil)
	if others := f.m.admittedOthers(""); len(others) != 0 {
		t.Fatalf("a pod no source lists counts as %d pods", len(others))
	}
	if !f.m.workerDone(pod.UID) {
		t.Fatal("worker not done")
	}
}
