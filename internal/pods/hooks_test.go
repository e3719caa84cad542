package pods

import (
	"context"
	"errors"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// calls lists the fake runtime's calls among names, in order.
func (f *fixture) calls(names ...string) []string {
	var out []string
	for _, c := range f.rt.GetCalls() {
		if slices.Contains(names, c) {
			out = append(out, c)
		}
	}
	return out
}

func TestPreStopHookRunsBeforeTheStop(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"drain"}}}}
	w := f.worker(pod)
	f.sync(w)
	f.m.SetPods("file", nil)
	w.sync(context.Background())
	if got := f.calls("ExecSync", "StopContainer"); !slices.Equal(got, []string{"ExecSync", "StopContainer"}) {
		t.Fatalf("calls %v, want the preStop exec, then the stop", got)
	}
}

func TestFailedPreStopHookStillStops(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"drain"}}}}
	w := f.worker(pod)
	f.sync(w)
	f.rt.InjectError("ExecSync", errors.New("exit status 1"))
	f.m.SetPods("file", nil)
	w.sync(context.Background())
	if got := f.calls("StopContainer"); len(got) != 1 {
		t.Fatalf("a failed preStop hook must not keep the container running: %v", f.rt.GetCalls())
	}
	if got := f.events.take(); !slices.Contains(got, `Warning FailedPreStopHook: PreStopHook failed: command "drain": exit status 1: `) {
		t.Fatalf("events %q", got)
	}
}

func TestFailedPostStartHookStopsTheContainer(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"init-db"}}}}
	w := f.worker(pod)
	f.rt.InjectError("ExecSync", errors.New("exit status 2"))
	f.sync(w)
	if running, total := f.count("app"); running != 0 || total != 1 {
		t.Fatalf("after a failed postStart hook: running %d of %d", running, total)
	}
	if got := f.calls("StartContainer", "ExecSync", "StopContainer"); !slices.Equal(got, []string{"StartContainer", "ExecSync", "StopContainer"}) {
		t.Fatalf("calls %v", got)
	}
	// The restart policy restarts it; this time the hook passes.
	f.sync(w)
	if running, total := f.count("app"); running != 1 || total != 2 {
		t.Fatalf("after the restart: running %d of %d", running, total)
	}
}

func TestEvictedPodStopsAndFails(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	w := f.worker(pod)
	f.sync(w)
	if f.m.Evict(pod.UID, "low on memory", "low on memory") {
		t.Fatal("a pod without a registered worker was evicted")
	}
	f.m.mu.Lock()
	f.m.recordLocked(pod.UID).worker = w
	f.m.mu.Unlock()
	if !f.m.Evict(pod.UID, "The node was low on resource: memory.", "The node was low on resource: memory.") {
		t.Fatal("Evict did not know the pod")
	}
	st := f.sync(w)
	if running, _ := f.count("app"); running != 0 {
		t.Fatal("an evicted pod still runs")
	}
	if st.Phase != v1.PodFailed || st.Reason != "Evicted" || st.Message != "The node was low on resource: memory." {
		t.Fatalf("status %s %s %q", st.Phase, st.Reason, st.Message)
	}
	if c := conditionOf(st, v1.DisruptionTarget); c.Status != v1.ConditionTrue || c.Reason != v1.PodReasonTerminationByKubelet || c.Message != "The node was low on resource: memory." {
		t.Fatalf("DisruptionTarget condition %+v, want the kubelet's (TerminationByKubelet, the eviction message)", c)
	}
	// It stays failed: the restart policy does not bring it back.
	f.sync(w)
	if running, _ := f.count("app"); running != 0 {
		t.Fatal("an evicted pod was restarted")
	}
}

type memoryPressure bool

func (p memoryPressure) MemoryPressure() (bool, error) { return bool(p), nil }

func TestBestEffortPodRefusedUnderMemoryPressure(t *testing.T) {
	f := newFixture(t)
	f.m.d.Pressure = memoryPressure(true)
	// An API pod (static pods are critical: never refused) without requests: BestEffort.
	pod := testPod(v1.RestartPolicyAlways)
	f.m.SetPods("api", []*v1.Pod{pod})
	st := f.sync(f.newWorker(pod.UID))
	if _, total := f.count("app"); total != 0 || st.Phase != v1.PodFailed || st.Reason != "Evicted" ||
		st.Message != "The node had condition: [MemoryPressure]. " {
		t.Fatalf("under memory pressure: %d containers, status %s %s %q", total, st.Phase, st.Reason, st.Message)
	}
	// A pod with requests (Burstable) is admitted.
	f2 := newFixture(t)
	f2.m.d.Pressure = memoryPressure(true)
	burstable := testPod(v1.RestartPolicyAlways)
	burstable.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}
	f2.m.SetPods("api", []*v1.Pod{burstable})
	f2.sync(f2.newWorker(burstable.UID))
	if running, _ := f2.count("app"); running != 1 {
		t.Fatal("a Burstable pod was refused under memory pressure")
	}
}
