package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestRuntimeClassHandler: in cluster mode a pod's runtimeClassName
// becomes its sandbox's runtime handler through the RuntimeClass object,
// for API and static pods alike; the class's overhead (which the API
// server's RuntimeClass admission copies into the pod) counts in the
// node's admission.
func TestRuntimeClassHandler(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	n := newNode(t)
	ctx := context.Background()
	cp.createRuntimeClasses(t,
		&nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "runc-class"}, Handler: "runc"},
		&nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "heavy"}, Handler: "runc",
			Overhead: &nodev1.Overhead{PodFixed: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1000")}}})
	n.writeManifest("static-class.yaml", securityPod("static-class", busybox, "  runtimeClassName: runc-class\n", ""))
	n.startKnode("--kubeconfig", cp.nodeKubeconfig(t, n))
	cp.defaultServiceAccount(t)
	pod := func(name, class string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: v1.PodSpec{NodeName: n.name, AutomountServiceAccountToken: new(bool), RuntimeClassName: &class,
				TerminationGracePeriodSeconds: new(int64),
				Containers:                    []v1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}}
	}
	for _, p := range []*v1.Pod{pod("classy", "runc-class"), pod("heavy", "heavy")} {
		if _, err := cp.core.Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"classy", "static-class"} {
		n.eventually(60*time.Second, name+" running", func() bool {
			for _, c := range n.containers("default", name, "main") {
				if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
					return true
				}
			}
			// The static pod's name carries the node's.
			cs, err := n.cri.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": name}})
			return err == nil && len(cs) > 0 && cs[0].State == runtimeapi.ContainerState_CONTAINER_RUNNING
		})
		sbs, err := n.cri.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": name}})
		if err != nil || len(sbs) == 0 {
			sbs = n.sandboxes("default", name)
		}
		if len(sbs) != 1 {
			t.Fatalf("%s: %d sandboxes", name, len(sbs))
		}
		resp, err := n.cri.PodSandboxStatus(ctx, sbs[0].Id, false)
		if err != nil {
			t.Fatal(err)
		}
		if h := resp.GetStatus().GetRuntimeHandler(); h != "runc" {
			t.Errorf("%s: sandbox runtime handler %q, want runc", name, h)
		}
	}
	n.eventually(60*time.Second, "the pod with a 1000-CPU overhead refused", func() bool {
		p, err := cp.core.Pods("default").Get(ctx, "heavy", metav1.GetOptions{})
		return err == nil && p.Status.Phase == v1.PodFailed && p.Status.Reason == "OutOfcpu"
	})
}

// TestRuntimeClassStandalone: without an API server a static pod naming a
// RuntimeClass gets no sandbox, rather than the default handler.
func TestRuntimeClassStandalone(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("class.yaml", securityPod("class", busybox, "  runtimeClassName: runc-class\n", ""))
	n.writeManifest("plain.yaml", securityPod("plain", busybox, "", ""))
	n.startKnode()
	n.waitRunning("default", "plain", "main")
	n.eventually(60*time.Second, "the pod held with CreatePodSandboxError", func() bool {
		p := n.apiPod(n.podName("class"))
		return p != nil && p.Status.Phase == v1.PodPending && p.Status.Reason == "CreatePodSandboxError" &&
			strings.HasSuffix(p.Status.Message, `runtimeclass.node.k8s.io "runc-class" not found: without an API server knode knows no RuntimeClass`)
	})
	if sbs := n.sandboxes("default", "class"); len(sbs) != 0 {
		t.Fatalf("%d sandboxes for a pod whose class is unknown", len(sbs))
	}
}
