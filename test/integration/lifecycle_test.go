package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// A static pod past its activeDeadlineSeconds ends Failed with the
// kubelet's reason and message, and its container is stopped.
func TestActiveDeadline(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("deadline.yaml", `apiVersion: v1
kind: Pod
metadata: {name: deadline}
spec:
  activeDeadlineSeconds: 3
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: `+busybox+`, command: [sleep, "3600"]}
`)
	n.startKnode()
	n.waitRunning("default", "deadline", "main")
	pod := n.waitFailed(n.podName("deadline"), "DeadlineExceeded")
	if pod.Status.Message != "Pod was active on the node longer than the specified deadline" {
		t.Errorf("message %q", pod.Status.Message)
	}
	n.eventually(30*time.Second, "the container stopped", func() bool { return n.running("default", "deadline", "main") == nil })
}

// clusterPod waits for an API pod to satisfy cond and returns it.
func clusterPod(t *testing.T, cp *controlPlane, n *node, name, what string, cond func(*v1.Pod) bool) *v1.Pod {
	t.Helper()
	var pod *v1.Pod
	n.eventually(90*time.Second, name+": "+what, func() bool {
		p, err := cp.core.Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		pod = p
		return cond(p)
	})
	return pod
}

func podCondition(p *v1.Pod, t v1.PodConditionType) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// In cluster mode: the Node's allocatable is capacity less the
// reservations and the hard eviction thresholds; pods the node cannot take
// are refused with the kubelet's reasons in the API status; an API pod
// past its active deadline fails; a changed image restarts the container
// (the kubelet's container hash); readiness gates hold Ready until a
// controller sets their conditions True, and knode keeps those conditions.
func TestClusterAdmissionAndLifecycle(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	n := newNode(t)
	n.startKnode("--kubeconfig", cp.nodeKubeconfig(t, n),
		"--kube-reserved", "cpu=500m,memory=1Gi", "--system-reserved", "memory=512Mi,ephemeral-storage=1Gi",
		"--eviction-hard", "memory.available<100Mi,nodefs.available<10%", "--max-pods", "20")
	ctx := context.Background()
	var node *v1.Node
	n.eventually(60*time.Second, "the node's allocatable in the API", func() bool {
		var err error
		node, err = cp.core.Nodes().Get(ctx, n.name, metav1.GetOptions{})
		return err == nil && node.Status.Allocatable != nil
	})
	capa, alloc := node.Status.Capacity, node.Status.Allocatable
	wantCPU := capa.Cpu().DeepCopy()
	wantCPU.Sub(resource.MustParse("500m"))
	wantMem := capa.Memory().DeepCopy()
	wantMem.Sub(resource.MustParse("1Gi"))
	wantMem.Sub(resource.MustParse("512Mi"))
	wantMem.Sub(resource.MustParse("100Mi"))
	for name, q := range capa {
		if strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix) {
			wantMem.Sub(q)
		}
	}
	eph := capa[v1.ResourceEphemeralStorage]
	wantEph := eph.DeepCopy()
	wantEph.Sub(resource.MustParse("1Gi"))
	wantEph.Sub(*resource.NewQuantity(eph.Value()/10, resource.BinarySI))
	allocEph := alloc[v1.ResourceEphemeralStorage]
	if alloc.Cpu().Cmp(wantCPU) != 0 || alloc.Memory().Cmp(wantMem) != 0 || eph.IsZero() || allocEph.Cmp(wantEph) != 0 || alloc.Pods().Value() != 20 || capa.Pods().Value() != 20 {
		t.Fatalf("capacity %v allocatable %v; want cpu %s memory %s ephemeral-storage %s pods 20", capa, alloc, wantCPU.String(), wantMem.String(), wantEph.String())
	}
	cp.defaultServiceAccount(t)
	mk := func(name string, mutate func(*v1.Pod)) {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: v1.PodSpec{NodeName: n.name, AutomountServiceAccountToken: new(bool), TerminationGracePeriodSeconds: ptr.To[int64](1),
				Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}}
		if mutate != nil {
			mutate(p)
		}
		if _, err := cp.core.Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Refused at admission: too much CPU, a nodeSelector the node lacks.
	mk("greedy", func(p *v1.Pod) {
		p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("64")}
	})
	mk("elsewhere", func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "nvme"} })
	failed := func(reason string) func(*v1.Pod) bool {
		return func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed && p.Status.Reason == reason }
	}
	greedy := clusterPod(t, cp, n, "greedy", "refused OutOfcpu", failed("OutOfcpu"))
	if !strings.HasPrefix(greedy.Status.Message, "Node didn't have enough resource: cpu, requested: 64000, used: ") ||
		!strings.HasSuffix(greedy.Status.Message, ", capacity: "+itoa64(alloc.Cpu().MilliValue())) {
		t.Errorf("OutOfcpu message %q", greedy.Status.Message)
	}
	elsewhere := clusterPod(t, cp, n, "elsewhere", "refused NodeAffinity", failed("NodeAffinity"))
	if elsewhere.Status.Message != "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector" {
		t.Errorf("NodeAffinity message %q", elsewhere.Status.Message)
	}
	// A NoExecute taint without a toleration refuses the next pod.
	node.Spec.Taints = []v1.Taint{{Key: "example.com/maintenance", Effect: v1.TaintEffectNoExecute}}
	if _, err := cp.core.Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(30*time.Second, "the taint in the API", func() bool {
		got, err := cp.core.Nodes().Get(ctx, n.name, metav1.GetOptions{})
		return err == nil && len(got.Spec.Taints) == 1
	})
	mk("tainted", nil)
	tainted := clusterPod(t, cp, n, "tainted", "refused TaintToleration", func(p *v1.Pod) bool { return p.Status.Phase != v1.PodPending })
	if tainted.Status.Reason != "TaintToleration" || tainted.Status.Message != "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate" {
		t.Errorf("tainted pod: %s %q %q", tainted.Status.Phase, tainted.Status.Reason, tainted.Status.Message)
	}
	node, _ = cp.core.Nodes().Get(ctx, n.name, metav1.GetOptions{})
	node.Spec.Taints = nil
	if _, err := cp.core.Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"greedy", "elsewhere", "tainted"} {
		sbs, err := n.cri.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": name}})
		if err != nil || len(sbs) != 0 {
			t.Errorf("refused pod %s got a sandbox (%v)", name, err)
		}
	}

	// Active deadline.
	mk("deadline", func(p *v1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](4) })
	dl := clusterPod(t, cp, n, "deadline", "failed DeadlineExceeded", failed("DeadlineExceeded"))
	if dl.Status.Message != "Pod was active on the node longer than the specified deadline" {
		t.Errorf("deadline message %q", dl.Status.Message)
	}

	// Readiness gates, then an image change.
	const gate = "example.com/ready"
	mk("gated", func(p *v1.Pod) { p.Spec.ReadinessGates = []v1.PodReadinessGate{{ConditionType: gate}} })
	readyIs := func(status v1.ConditionStatus, reason, message string) func(*v1.Pod) bool {
		return func(p *v1.Pod) bool {
			c := podCondition(p, v1.PodReady)
			return p.Status.Phase == v1.PodRunning && c != nil && c.Status == status && c.Reason == reason && c.Message == message
		}
	}
	clusterPod(t, cp, n, "gated", "Ready False for a missing gate condition", readyIs(v1.ConditionFalse, "ReadinessGatesNotReady",
		`corresponding condition of pod readiness gate "example.com/ready" does not exist.`))
	setGate := func(status v1.ConditionStatus) {
		body, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []v1.PodCondition{{Type: gate, Status: status, LastTransitionTime: metav1.Now()}}}})
		if _, err := cp.core.Pods("default").Patch(ctx, "gated", types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status"); err != nil {
			t.Fatal(err)
		}
	}
	setGate(v1.ConditionFalse)
	clusterPod(t, cp, n, "gated", "Ready False for a False gate", readyIs(v1.ConditionFalse, "ReadinessGatesNotReady",
		`the status of pod readiness gate "example.com/ready" is not "True", but False`))
	setGate(v1.ConditionTrue)
	gated := clusterPod(t, cp, n, "gated", "Ready True", readyIs(v1.ConditionTrue, "", ""))
	if c := podCondition(gated, gate); c == nil || c.Status != v1.ConditionTrue {
		t.Errorf("the gate's condition was not kept: %v", gated.Status.Conditions)
	}
	first := gated.Status.ContainerStatuses[0].ContainerID

	// The same image by its ID: a new definition for the kubelet's hash.
	img, err := n.cri.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: busybox}, false)
	if err != nil || img.GetImage() == nil {
		t.Fatalf("image status: %v", err)
	}
	newImage := img.GetImage().Id
	if d := img.GetImage().RepoDigests; len(d) > 0 {
		newImage = d[0]
	}
	body, _ := json.Marshal(map[string]any{"spec": map[string]any{"containers": []map[string]any{{"name": "main", "image": newImage}}}})
	if _, err := cp.core.Pods("default").Patch(ctx, "gated", types.StrategicMergePatchType, body, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	restarted := clusterPod(t, cp, n, "gated", "the container restarted with the new image", func(p *v1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].ContainerID != first && cs[0].State.Running != nil && cs[0].Image == newImage
	})
	if restarted.Status.ContainerStatuses[0].RestartCount != 1 {
		t.Errorf("restart count %d, want 1", restarted.Status.ContainerStatuses[0].RestartCount)
	}
	n.eventually(30*time.Second, "the Killing event", func() bool {
		list, err := cp.core.Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=gated,reason=Killing"})
		if err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Message == "Container main definition changed, will be restarted" {
				return true
			}
		}
		return false
	})
}

func itoa64(v int64) string { return resource.NewQuantity(v, resource.DecimalSI).String() }
