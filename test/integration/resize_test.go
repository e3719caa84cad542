package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestInPlaceResize: the pod's resize subresource changes a running
// container's CPU and memory through CRI UpdateContainerResources (the
// container's cgroup and the pod's read the new values, no restart), restarts the
// container whose memory has resizePolicy RestartContainer, reports
// allocatedResources and resources, and keeps a resize the node cannot
// hold pending: Deferred while other pods hold the room, allocated once
// they are gone.
func TestInPlaceResize(t *testing.T) {
	t.Parallel()
	rc := newResizeCluster(t)
	cp, n, root, ctx, get, res := rc.cp, rc.n, rc.root, rc.ctx, rc.get, resizeRes
	status, condition := containerStatus, podCondition
	rc.create(rc.sleeper("resize",
		v1.Container{Name: "main", Resources: res("100m", "64Mi", "200m", "128Mi")},
		v1.Container{Name: "restarter", Resources: res("100m", "32Mi", "100m", "64Mi"),
			ResizePolicy: []v1.ContainerResizePolicy{{ResourceName: v1.ResourceMemory, RestartPolicy: v1.RestartContainer}}}))
	n.eventually(2*time.Minute, "both containers running", func() bool {
		p := get("resize")
		m, r := status(p, "main"), status(p, "restarter")
		return m != nil && m.State.Running != nil && r != nil && r.State.Running != nil
	})
	// cgroup v1 files of a container, read inside it (its own cgroup is
	// mounted at /sys/fs/cgroup/<controller>).
	cgroup := func(cs *v1.ContainerStatus) string {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, _, err := n.cri.ExecSync(cctx, strings.TrimPrefix(cs.ContainerID, "containerd://"),
			[]string{"cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}, 20*time.Second)
		if err != nil {
			t.Fatalf("read %s's cgroup: %v", cs.Name, err)
		}
		return strings.Join(strings.Fields(string(out)), " ")
	}
	p := get("resize")
	main := status(p, "main")
	if got := cgroup(main); got != "20000 134217728" {
		t.Fatalf("main's cgroup before the resize: %q", got)
	}
	if a := main.AllocatedResources; a.Cpu().String() != "100m" || a.Memory().String() != "64Mi" {
		t.Errorf("allocatedResources %v", a)
	}
	if r := main.Resources; r == nil || r.Limits.Cpu().String() != "200m" || r.Limits.Memory().String() != "128Mi" {
		t.Errorf("resources %v", r)
	}
	mainID, restarterID := main.ContainerID, status(p, "restarter").ContainerID
	// The pod's cgroup holds the sum of its containers' limits.
	podCgroup := root + "/kubepods/burstable/pod" + string(p.UID)
	if q, m := cgroupFile(t, "cpu", podCgroup, "cpu.cfs_quota_us"), cgroupFile(t, "memory", podCgroup, "memory.limit_in_bytes"); q != "30000" || m != strconv.Itoa(192<<20) {
		t.Errorf("the pod cgroup before the resize: quota %s, memory %s", q, m)
	}

	// kubectl patch --subresource resize: more CPU and memory for main (in
	// place), more memory for restarter (RestartContainer).
	p.Spec.Containers[0].Resources = res("150m", "96Mi", "400m", "192Mi")
	p.Spec.Containers[1].Resources = res("100m", "48Mi", "100m", "96Mi")
	if _, err := cp.core.Pods("default").UpdateResize(ctx, "resize", p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(2*time.Minute, "the resize applied and reported", func() bool {
		p := get("resize")
		m, r := status(p, "main"), status(p, "restarter")
		return m.Resources != nil && m.Resources.Limits.Cpu().String() == "400m" && r.RestartCount == 1 && r.State.Running != nil &&
			condition(p, v1.PodResizeInProgress) == nil && condition(p, v1.PodResizePending) == nil
	})
	p = get("resize")
	main = status(p, "main")
	if main.ContainerID != mainID || main.RestartCount != 0 {
		t.Errorf("main was restarted by a NotRequired resize: %s → %s, restarts %d", mainID, main.ContainerID, main.RestartCount)
	}
	if got := cgroup(main); got != "40000 201326592" {
		t.Errorf("main's cgroup after the resize: %q, want the new quota and limit", got)
	}
	if a := main.AllocatedResources; a.Cpu().String() != "150m" || a.Memory().String() != "96Mi" {
		t.Errorf("allocatedResources after the resize %v", a)
	}
	if q, m := cgroupFile(t, "cpu", podCgroup, "cpu.cfs_quota_us"), cgroupFile(t, "memory", podCgroup, "memory.limit_in_bytes"); q != "50000" || m != strconv.Itoa(288<<20) {
		t.Errorf("the pod cgroup after the resize: quota %s, memory %s; want 50000 and %d", q, m, 288<<20)
	}
	restarter := status(p, "restarter")
	if restarter.ContainerID == restarterID {
		t.Error("restarter kept its container though its memory's resizePolicy is RestartContainer")
	}
	if got := cgroup(restarter); !strings.HasSuffix(got, " 100663296") {
		t.Errorf("restarter's cgroup after its restart: %q", got)
	}

	// More CPU than the node has is refused by the API server itself (its
	// resize admission checks the Node's allocatable); knode's Infeasible
	// check stands behind it (unit test).
	capacity := rc.allocatableCPU()
	var c *v1.PodCondition

	// Another pod takes most of the CPU: a resize that fits the node but
	// not beside it is Deferred, and allocated once that pod is gone.
	hogCPU := capacity - 500
	rc.hog(hogCPU)
	p = get("resize")
	p.Spec.Containers[0].Resources = res("500m", "96Mi", "600m", "192Mi")
	if _, err := cp.core.Pods("default").UpdateResize(ctx, "resize", p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(time.Minute, "PodResizePending Deferred", func() bool {
		c = condition(get("resize"), v1.PodResizePending)
		return c != nil && c.Reason == v1.PodReasonDeferred
	})
	if want := fmt.Sprintf("Node didn't have enough resource: cpu, requested: %d, used: %d, capacity: %d", 600, hogCPU, capacity); c.Message != want {
		t.Errorf("Deferred message %q, want %q", c.Message, want)
	}
	if err := cp.core.Pods("default").Delete(ctx, "hog", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(2*time.Minute, "the deferred resize allocated and applied once the hog is gone", func() bool {
		p := get("resize")
		m := status(p, "main")
		return condition(p, v1.PodResizePending) == nil && condition(p, v1.PodResizeInProgress) == nil &&
			m.AllocatedResources.Cpu().String() == "500m" && m.Resources.Limits.Cpu().String() == "600m"
	})
	if got := cgroup(status(get("resize"), "main")); got != "60000 201326592" {
		t.Errorf("main's cgroup after the deferred resize: %q", got)
	}

	// A memory limit below what the container uses: the runtime refuses
	// it (the kernel cannot reclaim anonymous memory), the resize stays in
	// progress with reason Error, and the cgroup keeps its limit.
	shrink := rc.sleeper("shrink", v1.Container{Name: "main", Resources: res("50m", "64Mi", "100m", "128Mi")})
	shrink.Spec.Containers[0].Command = []string{"memhog", "48"}
	rc.create(shrink)
	n.eventually(2*time.Minute, "memhog holding its memory", func() bool {
		cs := status(get("shrink"), "main")
		if cs == nil || cs.State.Running == nil {
			return false
		}
		code, _, body := n.raw("GET", "/containerLogs/default/shrink/main")
		return code == 200 && strings.Contains(body, "holding 48 MiB")
	})
	p = get("shrink")
	p.Spec.Containers[0].Resources = res("50m", "16Mi", "100m", "16Mi")
	if _, err := cp.core.Pods("default").UpdateResize(ctx, "shrink", p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(2*time.Minute, "PodResizeInProgress with reason Error", func() bool {
		c = condition(get("shrink"), v1.PodResizeInProgress)
		return c != nil && c.Reason == v1.PodReasonError
	})
	if !strings.Contains(c.Message, "failed to update resources of container main") {
		t.Errorf("PodResizeInProgress message %q", c.Message)
	}
	p = get("shrink")
	if got := cgroup(status(p, "main")); !strings.HasSuffix(got, " 134217728") {
		t.Errorf("the refused memory limit reached the cgroup: %q", got)
	}
	if r := status(p, "main").Resources; r == nil || r.Limits.Memory().String() != "128Mi" {
		t.Errorf("resources after a refused resize: %v, want the limit the container still has", r)
	}
}
