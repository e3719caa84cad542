package pods

import (
	"log/slog"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"knode.io/knode/internal/podsource"
)

func resizePod(uid, cpu, mem string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Name: uid, Namespace: "default",
		Annotations: map[string]string{podsource.SourceAnnotation: podsource.API}},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "main", Resources: v1.ResourceRequirements{
			Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(mem)}}}}}}
}

// testAllocs is allocations over pods held as the manager's records hold them.
type testAllocs struct {
	*allocations
	pods map[types.UID]*podAllocation
}

func newTestAllocs(a *allocations) *testAllocs {
	t := &testAllocs{allocations: a, pods: map[types.UID]*podAllocation{}}
	a.all = func() []*podAllocation {
		out := make([]*podAllocation, 0, len(t.pods))
		for _, pa := range t.pods {
			out = append(out, pa)
		}
		return out
	}
	return t
}

func testAllocations(allocatable func() (int64, int64)) *testAllocs {
	return newTestAllocs(newAllocations(allocatable, slog.New(slog.DiscardHandler)))
}

// admit syncs pod with its record's allocation, making the record (and
// admitting the pod) first.
func (t *testAllocs) admit(pod *v1.Pod) *v1.Pod {
	pa := t.pods[pod.UID]
	if pa == nil {
		pa, _ = t.newPod(pod.UID)
		t.pods[pod.UID] = pa
		t.admitted(pa, pod)
	}
	return t.allocations.admit(pa, pod)
}

// forget drops a pod and its record.
func (t *testAllocs) forget(uid types.UID) {
	t.allocations.forget(t.pods[uid])
	delete(t.pods, uid)
}

func cpuOf(p *v1.Pod) string { return p.Spec.Containers[0].Resources.Requests.Cpu().String() }

// The kubelet's canResizePod: beyond the node, Infeasible; beyond what the
// other pods' allocations leave, Deferred; the pod keeps running with its
// allocated resources meanwhile, and the resize is allocated once it fits.
func TestResizeAllocation(t *testing.T) {
	a := testAllocations(func() (int64, int64) { return 2000, 4 << 30 })
	other := resizePod("other", "1500m", "1Gi")
	a.admit(other)
	pod := resizePod("pod", "100m", "64Mi")
	if got := a.admit(pod); got != pod {
		t.Fatal("a first admission changed the pod")
	}
	pending := func() (string, string) {
		pa := a.pods["pod"]
		return pa.pendingReason, pa.pendingMessage
	}

	got := a.admit(resizePod("pod", "3", "64Mi"))
	if r, m := pending(); r != v1.PodReasonInfeasible || m != "Node didn't have enough capacity: cpu, requested: 3000, capacity: 2000" || cpuOf(got) != "100m" {
		t.Errorf("beyond the node: %q %q, runs with %s", r, m, cpuOf(got))
	}
	got = a.admit(resizePod("pod", "100m", "5Gi"))
	if r, m := pending(); r != v1.PodReasonInfeasible || m != "Node didn't have enough capacity: memory, requested: 5368709120, capacity: 4294967296" {
		t.Errorf("memory beyond the node: %q %q", r, m)
	}
	got = a.admit(resizePod("pod", "600m", "64Mi"))
	if r, m := pending(); r != v1.PodReasonDeferred || m != "Node didn't have enough resource: cpu, requested: 600, used: 1500, capacity: 2000" || cpuOf(got) != "100m" {
		t.Errorf("beside the other pod: %q %q, runs with %s", r, m, cpuOf(got))
	}
	a.forget("other")
	got = a.admit(resizePod("pod", "600m", "64Mi"))
	if r, _ := pending(); r != "" || cpuOf(got) != "600m" {
		t.Errorf("once the other pod is gone: pending %q, runs with %s", r, cpuOf(got))
	}
	// A static pod is never resized in place: its new spec replaces it.
	static := resizePod("static", "100m", "64Mi")
	static.Annotations[podsource.SourceAnnotation] = podsource.File
	a.admit(static)
	static = resizePod("static", "3", "64Mi")
	static.Annotations[podsource.SourceAnnotation] = podsource.File
	if got := a.admit(static); cpuOf(got) != "3" || a.pods["static"].pendingReason != "" {
		t.Errorf("static pod: runs with %s, pending %q", cpuOf(got), a.pods["static"].pendingReason)
	}
}

func TestResizeRestartPolicy(t *testing.T) {
	q := resource.MustParse
	cur := v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceCPU: q("200m"), v1.ResourceMemory: q("128Mi")}}
	cpuUp := v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceCPU: q("400m"), v1.ResourceMemory: q("128Mi")}}
	memDown := v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceCPU: q("200m"), v1.ResourceMemory: q("64Mi")}}
	c := &v1.Container{ResizePolicy: []v1.ContainerResizePolicy{
		{ResourceName: v1.ResourceCPU, RestartPolicy: v1.NotRequired},
		{ResourceName: v1.ResourceMemory, RestartPolicy: v1.RestartContainer}}}
	if needsRestart(c, cur, cpuUp) {
		t.Error("a CPU change restarts though CPU's policy is NotRequired")
	}
	if !needsRestart(c, cur, memDown) {
		t.Error("a memory change does not restart though memory's policy is RestartContainer")
	}
	if needsRestart(&v1.Container{}, cur, memDown) {
		t.Error("no policy must mean NotRequired")
	}
	if shrinks(cur, cpuUp) || !shrinks(cur, memDown) {
		t.Error("decreases are not told from increases")
	}
	if !cpuMemEqual(cur, *cur.DeepCopy()) || cpuMemEqual(cur, cpuUp) {
		t.Error("cpuMemEqual")
	}
}
