package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestInPlaceResizeSurvivesRestart: what a pod was allocated by an
// in-place resize, and a resize deferred for want of room, outlive a
// knode crash, as the kubelet's allocated_pods_state and
// actuated_pods_state make them: after the restart the pod reports its
// allocation (not its spec), its cgroup keeps the allocated limits, the
// deferred resize is still Deferred, and it is applied once room frees.
func TestInPlaceResizeSurvivesRestart(t *testing.T) {
	t.Parallel()
	root := testCgroupRoot(t)
	cp := newControlPlane(t)
	n := newNode(t)
	kc := cp.kubeconfig(t, n.name, "system:node:"+n.name, "system:nodes")
	args := []string{"--kubeconfig", kc, "--sync-frequency", "3s", "--cgroup-root", root}
	n.startKnode(args...)
	ctx := context.Background()
	if _, err := cp.core.ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	q := resource.MustParse
	res := func(reqCPU, reqMem, limCPU, limMem string) v1.ResourceRequirements {
		return v1.ResourceRequirements{
			Requests: v1.ResourceList{v1.ResourceCPU: q(reqCPU), v1.ResourceMemory: q(reqMem)},
			Limits:   v1.ResourceList{v1.ResourceCPU: q(limCPU), v1.ResourceMemory: q(limMem)}}
	}
	grace := int64(1)
	pods := cp.core.Pods("default")
	get := func(name string) *v1.Pod {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	main := func(p *v1.Pod) *v1.ContainerStatus {
		for i := range p.Status.ContainerStatuses {
			if p.Status.ContainerStatuses[i].Name == "main" {
				return &p.Status.ContainerStatuses[i]
			}
		}
		return nil
	}
	pending := func(p *v1.Pod) *v1.PodCondition {
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == v1.PodResizePending {
				return &p.Status.Conditions[i]
			}
		}
		return nil
	}
	running := func(name string) func() bool {
		return func() bool {
			cs := main(get(name))
			return cs != nil && cs.State.Running != nil
		}
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "resize", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: n.name, TerminationGracePeriodSeconds: &grace, AutomountServiceAccountToken: new(bool),
			Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}, Resources: res("100m", "64Mi", "200m", "128Mi")}}}}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(2*time.Minute, "the pod running", running("resize"))

	// An in-place resize, applied.
	p := get("resize")
	p.Spec.Containers[0].Resources = res("150m", "96Mi", "400m", "192Mi")
	if _, err := pods.UpdateResize(ctx, "resize", p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(2*time.Minute, "the resize applied", func() bool {
		m := main(get("resize"))
		return m.Resources != nil && m.Resources.Limits.Cpu().String() == "400m" && m.AllocatedResources.Cpu().String() == "150m"
	})
	podCgroup := root + "/kubepods/burstable/pod" + string(p.UID)
	quota := func() string { return cgroupFile(t, "cpu", podCgroup, "cpu.cfs_quota_us") }
	if got := quota(); got != "40000" {
		t.Fatalf("the pod cgroup after the resize: quota %s, want 40000", got)
	}

	// Another pod takes the room: the next resize is Deferred.
	node, err := cp.core.Nodes().Get(ctx, n.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hogCPU := node.Status.Allocatable.Cpu().MilliValue() - 300
	hog := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hog", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: n.name, TerminationGracePeriodSeconds: &grace, AutomountServiceAccountToken: new(bool),
			Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"},
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: *resource.NewMilliQuantity(hogCPU, resource.DecimalSI)}}}}}}
	if _, err := pods.Create(ctx, hog, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(2*time.Minute, "the hog running", running("hog"))
	p = get("resize")
	p.Spec.Containers[0].Resources = res("500m", "96Mi", "600m", "192Mi")
	if _, err := pods.UpdateResize(ctx, "resize", p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var before *v1.PodCondition
	n.eventually(time.Minute, "PodResizePending Deferred", func() bool {
		before = pending(get("resize"))
		return before != nil && before.Reason == v1.PodReasonDeferred
	})
	mainID := main(get("resize")).ContainerID

	// knode crashes and starts again.
	n.knode.kill()
	restarted := time.Now().Truncate(time.Second)
	n.startKnode(args...)
	n.eventually(2*time.Minute, "the restarted knode's first status of the pod", func() bool {
		c := pending(get("resize"))
		return c == nil || (!c.LastProbeTime.Equal(&before.LastProbeTime) && !c.LastProbeTime.Time.Before(restarted))
	})
	p = get("resize")
	if c := pending(p); c == nil || c.Reason != v1.PodReasonDeferred || c.Message != before.Message {
		t.Errorf("after the restart the deferred resize is %+v, want still Deferred: %q", c, before.Message)
	}
	m := main(p)
	if m.ContainerID != mainID || m.RestartCount != 0 {
		t.Errorf("the container was replaced: %s → %s", mainID, m.ContainerID)
	}
	if a := m.AllocatedResources; a.Cpu().String() != "150m" {
		t.Errorf("allocatedResources after the restart: %v, want the allocation (150m), not the spec", a)
	}
	if r := m.Resources; r == nil || r.Limits.Cpu().String() != "400m" {
		t.Errorf("resources after the restart: %v, want the applied 400m limit", r)
	}
	if got := quota(); got != "40000" {
		t.Errorf("the pod cgroup after the restart: quota %s, want the allocated 40000", got)
	}
	for _, f := range []string{"allocated_pods_state", "actuated_pods_state"} {
		fi, err := os.Stat(filepath.Join(n.rootDir(), f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}

	// Room frees: the resize deferred before the restart is allocated and
	// applied to the running container.
	if err := pods.Delete(ctx, "hog", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(2*time.Minute, "the deferred resize allocated and applied", func() bool {
		p := get("resize")
		m := main(p)
		return pending(p) == nil && m.AllocatedResources.Cpu().String() == "500m" && m.Resources != nil && m.Resources.Limits.Cpu().String() == "600m"
	})
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, _, err := n.cri.ExecSync(cctx, strings.TrimPrefix(main(get("resize")).ContainerID, "containerd://"),
		[]string{"cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"}, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "60000" {
		t.Errorf("the container's quota after the deferred resize: %s, want 60000", got)
	}
	if got := quota(); got != "60000" {
		t.Errorf("the pod cgroup after the deferred resize: quota %s, want 60000", got)
	}
}
