package integration

import (
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// apiPod is the pod as knode's /pods serves it, or nil.
func (n *node) apiPod(name string) *v1.Pod {
	list, err := n.api().Pods(n.t.Context())
	if err != nil {
		return nil
	}
	for i := range list.Items {
		if list.Items[i].Name == name {
			return &list.Items[i]
		}
	}
	return nil
}

// waitFailed waits for the pod to be Failed with reason and returns it.
func (n *node) waitFailed(name, reason string) *v1.Pod {
	n.t.Helper()
	var pod *v1.Pod
	n.eventually(60*time.Second, name+" to fail with "+reason, func() bool {
		pod = n.apiPod(name)
		return pod != nil && pod.Status.Phase == v1.PodFailed && pod.Status.Reason == reason
	})
	return pod
}

// Static pods go through the kubelet's admission: a nodeSelector the node
// does not match and a host port another pod holds refuse the pod before
// any sandbox exists, with the kubelet's reasons and messages. (Static
// pods are critical, so resource shortages do not refuse them.)
func TestAdmissionRefusesStaticPods(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("elsewhere.yaml", `apiVersion: v1
kind: Pod
metadata: {name: elsewhere}
spec:
  nodeSelector: {disk: nvme}
  containers:
  - {name: main, image: `+busybox+`, command: [sleep, "3600"]}
`)
	n.writeManifest("here.yaml", `apiVersion: v1
kind: Pod
metadata: {name: here}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {disk: ssd}
  containers:
  - {name: main, image: `+busybox+`, command: [sleep, "3600"]}
`)
	port := freePort(t)
	for _, name := range []string{"port-a", "port-b"} {
		n.writeManifest(name+".yaml", `apiVersion: v1
kind: Pod
metadata: {name: `+name+`}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: `+busybox+`
    command: [sleep, "3600"]
    ports: [{containerPort: 80, hostPort: `+strconv.Itoa(port)+`, hostIP: 127.0.0.1}]
`)
	}
	n.startKnode("--node-labels", "disk=ssd")
	pod := n.waitFailed(n.podName("elsewhere"), "NodeAffinity")
	if want := "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"; pod.Status.Message != want {
		t.Errorf("message %q, want %q", pod.Status.Message, want)
	}
	if len(n.sandboxes("default", "elsewhere")) != 0 {
		t.Error("a refused pod got a sandbox")
	}
	n.waitRunning("default", "here", "main")

	// One of the two pods holding the same host port runs, the other is refused.
	var refused, running string
	n.eventually(60*time.Second, "one port pod refused, the other running", func() bool {
		for _, pair := range [][2]string{{"port-a", "port-b"}, {"port-b", "port-a"}} {
			p := n.apiPod(n.podName(pair[0]))
			if p != nil && p.Status.Phase == v1.PodFailed && p.Status.Reason == "NodePorts" && n.running("default", pair[1], "main") != nil {
				refused, running = pair[0], pair[1]
				return true
			}
		}
		return false
	})
	p := n.apiPod(n.podName(refused))
	if want := "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"; p.Status.Message != want {
		t.Errorf("message %q, want %q", p.Status.Message, want)
	}
	if len(n.sandboxes("default", refused)) != 0 {
		t.Errorf("%s was refused but has a sandbox (%s runs)", refused, running)
	}
	if !strings.Contains(n.knodeLog(), "pod admission refused") {
		t.Error("the refusal is not logged")
	}
}
