package integration

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// preemptionPod is a static pod manifest with a priority; cpu, when set,
// is its request (Burstable), otherwise it is BestEffort.
func preemptionPod(name, priority, cpu string) string {
	resources := ""
	if cpu != "" {
		resources = "\n    resources: {requests: {cpu: " + cpu + "}}"
	}
	return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `}
spec:
  priority: ` + priority + `
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ` + busybox + `
    command: [sleep, "3600"]` + resources + `
`
}

// checkPreempted checks a Failed/Preempting pod's status against the
// kubelet's: its message and its DisruptionTarget condition.
func checkPreempted(t *testing.T, pod *v1.Pod) {
	t.Helper()
	if want := "Preempted in order to admit critical pod"; pod.Status.Message != want {
		t.Errorf("preempted pod's message %q, want %q", pod.Status.Message, want)
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.DisruptionTarget && c.Status == v1.ConditionTrue && c.Reason == "TerminationByKubelet" &&
			c.Message == "Pod was preempted by Kubelet to accommodate a critical pod." {
			return
		}
	}
	t.Errorf("the preempted pod has no DisruptionTarget condition of the kubelet's: %+v", pod.Status.Conditions)
}

// A node full of pods (--max-pods 2) admits a critical static pod as the
// kubelet's CriticalPodAdmissionHandler does: it stops the pod of lowest
// QoS it may preempt — the BestEffort one, not the Burstable one — which
// ends Failed with the kubelet's reason, message and DisruptionTarget
// condition, and runs the critical
// pod. A static pod is critical itself, so only a higher priority
// preempts it; a pod nothing can make room for is refused with the
// kubelet's UnexpectedAdmissionError.
func TestCriticalStaticPodPreemptsLowerQoS(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("besteffort.yaml", preemptionPod("besteffort", "100", ""))
	n.writeManifest("burstable.yaml", preemptionPod("burstable", "100", "10m"))
	n.startKnode("--max-pods", "2")
	n.waitRunning("default", "besteffort", "main")
	n.waitRunning("default", "burstable", "main")

	n.writeManifest("critical.yaml", preemptionPod("critical", "2000001000", "10m"))
	victim := n.waitFailed(n.podName("besteffort"), "Preempting")
	checkPreempted(t, victim)
	n.waitRunning("default", "critical", "main")
	n.eventually(30*time.Second, "the preempted pod's container stopped", func() bool {
		return n.running("default", "besteffort", "main") == nil
	})
	if p := n.apiPod(n.podName("burstable")); p == nil || p.Status.Phase != "Running" {
		t.Errorf("the Burstable pod was not left running: %+v", p)
	}

	// Static, so critical, but of lower priority than both running pods:
	// nothing may be preempted for it.
	n.writeManifest("late.yaml", preemptionPod("late", "50", ""))
	late := n.waitFailed(n.podName("late"), "UnexpectedAdmissionError")
	if want := "Unexpected error while attempting to recover from admission failure: preemption: error finding a set of pods to preempt: no set of running pods found to reclaim resources: [(res: pods, q: 1), ]"; late.Status.Message != want {
		t.Errorf("refused pod's message %q, want %q", late.Status.Message, want)
	}
	if len(n.sandboxes("default", "late")) != 0 {
		t.Error("the refused pod got a sandbox")
	}
	if n.running("default", "critical", "main") == nil || n.running("default", "burstable", "main") == nil {
		t.Error("a pod was stopped for a pod that was refused")
	}
}

// In cluster mode an API pod is not critical: a static pod (critical)
// arriving on a full node preempts it, and the API shows what the
// kubelet's would: the pod Failed with Preempting, its DisruptionTarget
// condition, and the Preempting event from the kubelet.
func TestClusterStaticPodPreemptsAPIPod(t *testing.T) {
	t.Parallel()
	cp, n := newClusterNode(t, "--max-pods", "1")
	ctx := context.Background()
	victim := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "victim", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: n.name, AutomountServiceAccountToken: new(bool), TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}}
	n.eventually(60*time.Second, "the victim pod created (the node registered)", func() bool {
		_, err := cp.core.Pods("default").Create(ctx, victim, metav1.CreateOptions{})
		return err == nil
	})
	clusterPod(t, cp, n, "victim", "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	n.writeManifest("critical.yaml", podManifest("critical", "default", "Always", "exec sleep 3600"))
	got := clusterPod(t, cp, n, "victim", "Failed with Preempting", func(p *v1.Pod) bool {
		return p.Status.Phase == v1.PodFailed && p.Status.Reason == "Preempting"
	})
	checkPreempted(t, got)
	clusterPod(t, cp, n, n.podName("critical"), "the critical pod's mirror Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	n.eventually(30*time.Second, "the kubelet's Preempting event on the victim", func() bool {
		list, err := cp.core.Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=victim,reason=Preempting"})
		if err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.InvolvedObject.UID == got.UID && e.Type == v1.EventTypeWarning && e.Message == "Preempted in order to admit critical pod" && e.Source.Component == "kubelet" {
				return true
			}
		}
		return false
	})
}
