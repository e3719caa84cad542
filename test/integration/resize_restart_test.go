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

// resizeCluster is a cluster-mode node for the resize tests: knode with a
// cgroup root of the test's own and a quick sync, and the default service
// account.
type resizeCluster struct {
	t    *testing.T
	ctx  context.Context
	cp   *controlPlane
	n    *node
	root string
	// args start knode (again).
	args []string
}

func newResizeCluster(t *testing.T) *resizeCluster {
	root := testCgroupRoot(t)
	cp := newControlPlane(t)
	n := newNode(t)
	kc := cp.nodeKubeconfig(t, n)
	c := &resizeCluster{t: t, ctx: context.Background(), cp: cp, n: n, root: root,
		args: []string{"--kubeconfig", kc, "--sync-frequency", "3s", "--cgroup-root", root}}
	n.startKnode(c.args...)
	cp.defaultServiceAccount(t)
	return c
}

// resizeRes is a container's CPU and memory requests and limits.
func resizeRes(reqCPU, reqMem, limCPU, limMem string) v1.ResourceRequirements {
	q := resource.MustParse
	return v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: q(reqCPU), v1.ResourceMemory: q(reqMem)},
		Limits:   v1.ResourceList{v1.ResourceCPU: q(limCPU), v1.ResourceMemory: q(limMem)}}
}

// sleeper is a pod on the node whose containers sleep.
func (c *resizeCluster) sleeper(name string, containers ...v1.Container) *v1.Pod {
	grace := int64(1)
	for i := range containers {
		containers[i].Image, containers[i].Command = busybox, []string{"sleep", "3600"}
	}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.PodSpec{NodeName: c.n.name, TerminationGracePeriodSeconds: &grace, AutomountServiceAccountToken: new(bool), Containers: containers}}
}

func (c *resizeCluster) create(pod *v1.Pod) {
	c.t.Helper()
	if _, err := c.cp.core.Pods("default").Create(c.ctx, pod, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *resizeCluster) get(name string) *v1.Pod {
	c.t.Helper()
	p, err := c.cp.core.Pods("default").Get(c.ctx, name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// resize asks for the pod's new spec through its resize subresource.
func (c *resizeCluster) resize(p *v1.Pod) {
	c.t.Helper()
	if _, err := c.cp.core.Pods("default").UpdateResize(c.ctx, p.Name, p, metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// allocatableCPU is the node's allocatable CPU (milli) as it reports it.
func (c *resizeCluster) allocatableCPU() int64 {
	c.t.Helper()
	node, err := c.cp.core.Nodes().Get(c.ctx, c.n.name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return node.Status.Allocatable.Cpu().MilliValue()
}

// hog runs a pod that requests milliCPU, taking that room from the others.
func (c *resizeCluster) hog(milliCPU int64) {
	c.t.Helper()
	c.create(c.sleeper("hog", v1.Container{Name: "main",
		Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: *resource.NewMilliQuantity(milliCPU, resource.DecimalSI)}}}))
	c.n.eventually(2*time.Minute, "the hog running", func() bool {
		cs := containerStatus(c.get("hog"), "main")
		return cs != nil && cs.State.Running != nil
	})
}

func containerStatus(p *v1.Pod, name string) *v1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// TestInPlaceResizeSurvivesRestart: what a pod was allocated by an
// in-place resize, and a resize deferred for want of room, outlive a
// knode crash, as the kubelet's allocated_pods_state and
// actuated_pods_state make them: after the restart the pod reports its
// allocation (not its spec), its cgroup keeps the allocated limits, the
// deferred resize is still Deferred, and it is applied once room frees.
func TestInPlaceResizeSurvivesRestart(t *testing.T) {
	t.Parallel()
	c := newResizeCluster(t)
	n, get := c.n, c.get
	main := func(p *v1.Pod) *v1.ContainerStatus { return containerStatus(p, "main") }
	pending := func(p *v1.Pod) *v1.PodCondition { return podCondition(p, v1.PodResizePending) }
	c.create(c.sleeper("resize", v1.Container{Name: "main", Resources: resizeRes("100m", "64Mi", "200m", "128Mi")}))
	n.eventually(2*time.Minute, "the pod running", func() bool {
		cs := main(get("resize"))
		return cs != nil && cs.State.Running != nil
	})

	// An in-place resize, applied.
	p := get("resize")
	p.Spec.Containers[0].Resources = resizeRes("150m", "96Mi", "400m", "192Mi")
	c.resize(p)
	n.eventually(2*time.Minute, "the resize applied", func() bool {
		m := main(get("resize"))
		return m.Resources != nil && m.Resources.Limits.Cpu().String() == "400m" && m.AllocatedResources.Cpu().String() == "150m"
	})
	podCgroup := c.root + "/kubepods/burstable/pod" + string(p.UID)
	quota := func() string { return cgroupFile(t, "cpu", podCgroup, "cpu.cfs_quota_us") }
	if got := quota(); got != "40000" {
		t.Fatalf("the pod cgroup after the resize: quota %s, want 40000", got)
	}

	// Another pod takes the room: the next resize is Deferred.
	c.hog(c.allocatableCPU() - 300)
	p = get("resize")
	p.Spec.Containers[0].Resources = resizeRes("500m", "96Mi", "600m", "192Mi")
	c.resize(p)
	var before *v1.PodCondition
	n.eventually(time.Minute, "PodResizePending Deferred", func() bool {
		before = pending(get("resize"))
		return before != nil && before.Reason == v1.PodReasonDeferred
	})
	mainID := main(get("resize")).ContainerID

	// knode crashes and starts again.
	n.knode.kill()
	n.startKnode(c.args...)
	// What the restarted knode itself reports (its /pods), once its worker
	// has synced the pod: the API object may still hold the status written
	// before the crash, and one written after it can be the same to the
	// second (the condition's times are second-precise), so the API server
	// cannot tell the two apart.
	n.eventually(2*time.Minute, "the restarted knode's first status of the pod", func() bool {
		p := n.apiPod("resize")
		return p != nil && main(p) != nil && main(p).ContainerID != "" && main(p).AllocatedResources != nil
	})
	p = n.apiPod("resize")
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
	if err := c.cp.core.Pods("default").Delete(c.ctx, "hog", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(2*time.Minute, "the deferred resize allocated and applied", func() bool {
		p := get("resize")
		m := main(p)
		return pending(p) == nil && m.AllocatedResources.Cpu().String() == "500m" && m.Resources != nil && m.Resources.Limits.Cpu().String() == "600m"
	})
	cctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
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
