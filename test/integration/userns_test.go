package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	nodeclient "k8s.io/client-go/kubernetes/typed/node/v1"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/containerd"
)

// usernsHandler is the test containerd's second runtime handler, running
// runc 1.5 (hack/setup-runc.sh), whose idmapped mounts containerd needs
// to report user namespaces; the default handler runs Debian's runc 1.1.5,
// which has none.
const usernsHandler = "runc-userns"

// createRuntimeClasses creates RuntimeClass objects as the cluster's admin.
func (cp *controlPlane) createRuntimeClasses(t *testing.T, classes ...*nodev1.RuntimeClass) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.kubeconfig(t, "admin", "admin", "system:masters"))
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := nodeclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range classes {
		if _, err := nodes.RuntimeClasses().Create(context.Background(), rc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// newUsernsNode is a node whose containerd also has the usernsHandler.
func newUsernsNode(t *testing.T) *node {
	t.Helper()
	n := newBareNode(t)
	// A pod in a user namespace resolves its rootfs beneath the runtime's
	// state dir as its own host IDs: the way there must be searchable.
	if err := os.Chmod(n.dir, 0o711); err != nil {
		t.Fatal(err)
	}
	n.runcHandlers = []containerd.RuncHandler{{Name: usernsHandler, Binary: tool(t, "hack/setup-runc.sh", "runc-v1.5.3", "runc")}}
	n.startRuntime()
	t.Cleanup(func() {
		if t.Failed() {
			log := n.knodeLog()
			t.Logf("knode log (end):\n%s", log[max(0, len(log)-6000):])
			ctr, _ := os.ReadFile(n.layout().LogFile())
			t.Logf("containerd log (end):\n%s", ctr[max(0, len(ctr)-4000):])
		}
	})
	return n
}

// usernsPodManifest is a static pod in its own user namespace on the
// RuntimeClass "userns", with an emptyDir, a container with the default
// /proc and one with an Unmasked one.
func usernsPodManifest(name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 0
  hostUsers: false
  runtimeClassName: userns
  volumes:
  - {name: data, emptyDir: {}}
  containers:
  - name: main
    image: %s
    command: ["sleep", "3600"]
    volumeMounts: [{name: data, mountPath: /data}]
  - name: unmasked
    image: %s
    command: ["sleep", "3600"]
    securityContext: {procMount: Unmasked}
`, name, busybox, busybox)
}

// idMap reads a container's /proc/self/uid_map or gid_map: its one line's
// inside ID, host ID and length.
func idMap(t *testing.T, n *node, pod, file string) (inside, host, length uint64) {
	t.Helper()
	out := n.execIn(pod, "main", "cat", "/proc/self/"+file)
	f := strings.Fields(out)
	if len(f) != 3 {
		t.Fatalf("%s of %s: %q, want one mapping", file, pod, out)
	}
	var nums [3]uint64
	for i, s := range f {
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			t.Fatalf("%s of %s: %q", file, pod, out)
		}
		nums[i] = v
	}
	return nums[0], nums[1], nums[2]
}

// TestUserNamespaces: a pod with hostUsers false on a runtime handler
// that supports user namespaces runs as root in a namespace of its own,
// mapped to 65536 host IDs of a range no other pod has, with a writable
// emptyDir (idmapped: what the pod's root writes is root's on disk) and,
// for procMount Unmasked, no masked /proc paths. The range is kept in the
// pod's directory: a restarted knode gives the pod's new sandbox the same
// range and a new pod another. The same pod on the default handler (Debian's
// runc) gets no sandbox, with the kubelet's reason, message and event; the
// Node reports each handler's support.
func TestUserNamespaces(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	n := newUsernsNode(t)
	ctx := context.Background()
	cp.createRuntimeClasses(t, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "userns"}, Handler: usernsHandler})
	n.writeManifest("userns.yaml", usernsPodManifest("userns"))
	kubeconfig := cp.nodeKubeconfig(t, n)
	n.startKnode("--kubeconfig", kubeconfig)
	cp.defaultServiceAccount(t)
	no := false
	refused := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "default-handler", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: n.name, AutomountServiceAccountToken: new(bool), HostUsers: &no, TerminationGracePeriodSeconds: new(int64),
			Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}}
	if _, err := cp.core.Pods("default").Create(ctx, refused, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Root inside, a range of 65536 host IDs outside, users and groups alike.
	inside, host, length := idMap(t, n, "userns", "uid_map")
	if inside != 0 || length != 65536 || host < 65536 || host%65536 != 0 {
		t.Fatalf("uid_map: %d %d %d, want 0 <a multiple of 65536 above 0> 65536", inside, host, length)
	}
	if gi, gh, gl := idMap(t, n, "userns", "gid_map"); gi != 0 || gh != host || gl != length {
		t.Fatalf("gid_map: %d %d %d, want 0 %d 65536", gi, gh, gl, host)
	}
	if out := n.execIn("userns", "main", "id"); !strings.HasPrefix(out, "uid=0(root) gid=0(root)") {
		t.Fatalf("id: %q", out)
	}
	// The emptyDir is the pod root's: writable, and what it writes is the
	// host's root's on disk (an idmapped mount), not the host ID it runs as.
	if out := n.execIn("userns", "main", "sh", "-c", "echo hi > /data/f && stat -c %u:%g /data/f"); out != "0:0" {
		t.Fatalf("write to the emptyDir: %q", out)
	}
	p := n.apiPod(n.podName("userns"))
	if p == nil {
		t.Fatal("pod not served")
	}
	podDir := filepath.Join(n.rootDir(), "pods", string(p.UID))
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(podDir, "volumes", "kubernetes.io~empty-dir", "data", "f"), &st); err != nil || st.Uid != 0 {
		t.Fatalf("the file on the host: uid %d, %v", st.Uid, err)
	}
	// Default /proc is masked (reads as empty); Unmasked is not.
	interrupts := func(container string) string {
		return n.execIn("userns", container, "sh", "-c", "cat /proc/interrupts | wc -c")
	}
	if d, u := interrupts("main"), interrupts("unmasked"); d != "0" || u == "0" || u == "" {
		t.Fatalf("/proc/interrupts bytes: default %q, Unmasked %q", d, u)
	}
	// The range is kept in the pod's directory, in the kubelet's format.
	var file struct {
		UIDMappings []struct{ HostID, ContainerID, Length uint64 } `json:"uidMappings"`
		GIDMappings []struct{ HostID, ContainerID, Length uint64 } `json:"gidMappings"`
	}
	data, err := os.ReadFile(filepath.Join(podDir, "userns"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &file); err != nil || len(file.UIDMappings) != 1 || file.UIDMappings[0].HostID != host || len(file.GIDMappings) != 1 {
		t.Fatalf("userns file %s: %v", data, err)
	}

	// The default handler cannot: no sandbox, the kubelet's reason,
	// message and event.
	msg := "can't set `spec.hostUsers: false`, runtime does not support user namespaces"
	n.eventually(60*time.Second, "the pod on the default handler held with CreatePodSandboxError", func() bool {
		p, err := cp.core.Pods("default").Get(ctx, "default-handler", metav1.GetOptions{})
		return err == nil && p.Status.Phase == v1.PodPending && p.Status.Reason == "CreatePodSandboxError" &&
			p.Status.Message == fmt.Sprintf("Failed to generate sandbox config for pod %q: %s", "default-handler_default("+string(p.UID)+")", msg)
	})
	n.eventually(60*time.Second, "a FailedCreatePodSandBox event", func() bool {
		list, err := cp.core.Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=default-handler"})
		if err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Reason == "FailedCreatePodSandBox" && e.Message == "Failed to create pod sandbox: "+msg {
				return true
			}
		}
		return false
	})
	if sbs, err := n.cri.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": "default-handler"}}); err != nil || len(sbs) != 0 {
		t.Fatalf("%d sandboxes for the refused pod (%v)", len(sbs), err)
	}
	// The Node says which handler supports user namespaces.
	n.eventually(60*time.Second, "the node's runtimeHandlers", func() bool {
		node, err := cp.core.Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		got := map[string]bool{}
		for _, h := range node.Status.RuntimeHandlers {
			if h.Features != nil && h.Features.UserNamespaces != nil {
				got[h.Name] = *h.Features.UserNamespaces
			}
		}
		return len(got) == 3 && got[usernsHandler] && !got[""] && !got["runc"]
	})

	// A restarted knode reads the range back: the pod's next sandbox gets
	// the same one, and a new pod another.
	n.knode.kill()
	sbs := n.sandboxes("default", "userns")
	if len(sbs) != 1 {
		t.Fatalf("%d sandboxes", len(sbs))
	}
	if err := n.cri.StopPodSandbox(ctx, sbs[0].Id); err != nil {
		t.Fatal(err)
	}
	n.writeManifest("userns2.yaml", usernsPodManifest("userns2"))
	n.startKnode("--kubeconfig", kubeconfig)
	n.eventually(90*time.Second, "a new sandbox for the pod", func() bool {
		for _, sb := range n.sandboxes("default", "userns") {
			if sb.Id != sbs[0].Id && sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
				return true
			}
		}
		return false
	})
	n.eventually(90*time.Second, "the pod's container in its new sandbox", func() bool {
		c := n.running("default", "userns", "main")
		return c != nil && c.PodSandboxId != sbs[0].Id
	})
	if _, again, _ := idMap(t, n, "userns", "uid_map"); again != host {
		t.Fatalf("after a restart the pod's new sandbox maps to %d, its range was %d", again, host)
	}
	if _, other, _ := idMap(t, n, "userns2", "uid_map"); other == host || other < 65536 || other%65536 != 0 {
		t.Fatalf("a second pod maps to %d; the first has %d", other, host)
	}
}
