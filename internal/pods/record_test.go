package pods

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// A pod two sources declare is one pod: it stays while either declares it,
// with the spec of the first source by name.
func TestRecordMergesSources(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	fromAPI := pod.DeepCopy()
	fromAPI.Labels = map[string]string{"from": "api"}
	f.m.SetPods("file", []*v1.Pod{pod})
	f.m.SetPods("api", []*v1.Pod{fromAPI})
	if got := f.m.Pods(); len(got) != 1 || got[0].Labels["from"] != "api" {
		t.Fatalf("pods %v, want the one pod with the api source's spec", got)
	}
	f.m.SetPods("api", nil)
	if got := f.m.desired(pod.UID); got == nil || got.Labels["from"] != "" {
		t.Fatalf("after the api source dropped it: %v, want the file source's spec", got)
	}
	f.m.SetPods("file", nil)
	if got := f.m.desired(pod.UID); got != nil {
		t.Fatal("still desired after both sources dropped it")
	}
}

// A pod that is gone loses its record as a whole: its probe workers stop
// and nothing of it is kept.
func TestRecordReleasedWithThePod(t *testing.T) {
	f, sp := probeFixture(t)
	sp.set("ready", true)
	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.Containers[0].ReadinessProbe = execProbe("ready")
	w := f.worker(pod)
	f.sync(w)
	f.sync(w)
	probes := f.probesOf(pod.UID)
	probes.mu.Lock()
	var stops []chan struct{}
	for _, pw := range probes.workers {
		stops = append(stops, pw.stop)
	}
	probes.mu.Unlock()
	if len(stops) != 1 {
		t.Fatalf("%d probe workers, want 1", len(stops))
	}
	f.m.SetPods("file", nil)
	w.sync(context.Background())
	if _, gone := w.sync(context.Background()); !gone || !f.m.workerDone(pod.UID) {
		t.Fatal("the pod was not done after its removal")
	}
	f.m.mu.RLock()
	_, kept := f.m.records[pod.UID]
	f.m.mu.RUnlock()
	if kept {
		t.Fatal("the pod's record was kept")
	}
	select {
	case <-stops[0]:
	default:
		t.Fatal("the pod's probe worker was not stopped")
	}
}
