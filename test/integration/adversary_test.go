package integration

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A container nests directories in its emptyDir deeper than knode may hold
// descriptors open. The pod's teardown must still remove the whole pod
// directory: a removal that keeps one descriptor per level runs out of
// descriptors (and, while it does, every other open in knode fails too),
// and leaves the tree on the node's disk for good.
func TestTeardownOfADeepEmptyDirTree(t *testing.T) {
	t.Parallel()
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	// knode raises its soft limit to the hard one; the tree goes deeper.
	depth := max(25000, int(rl.Max)+5000)
	if depth > 200000 {
		t.Skipf("the descriptor limit (%d) is too high for a tree deeper than it in reasonable time", rl.Max)
	}
	n := newNode(t)
	// 1024 levels per mkdir -p (a 2047-byte path); the tree so far is moved
	// to the bottom of a new one, again and again.
	n.writeManifest("deep.yaml", `apiVersion: v1
kind: Pod
metadata: {name: deep}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", "p=d; for i in 1 2 3 4 5 6 7 8 9 10; do p=$p/$p; done; cd /scratch && mkdir -p t/$p || exit 1; i=0; while [ $i -lt `+strconv.Itoa(depth/1025+1)+` ]; do mkdir -p n/$p && mv t n/$p/ && mv n t || exit 1; i=$((i+1)); done; echo nested; exec sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes:
  - {name: scratch, emptyDir: {}}
`)
	n.startKnode()
	uid := n.podUID("default", "deep")
	podDir := filepath.Join(n.rootDir(), "pods", uid)
	n.eventually(5*time.Minute, "the container to nest its directories", func() bool {
		return strings.Contains(n.logFile("default", "deep", "main"), "nested")
	})
	n.removeManifest("deep.yaml")
	n.eventually(60*time.Second, "the pod's sandbox removed", func() bool {
		return len(n.sandboxes("default", "deep")) == 0
	})
	n.eventually(3*time.Minute, "the pod's directory removed", func() bool {
		_, err := os.Lstat(podDir)
		return os.IsNotExist(err)
	})
}

// A tenant's pod from the API server sets the annotations knode puts on
// static pods: kubernetes.io/config.source "file" and knode.io/config.file
// naming the manifest of a static pod of the node. It must not pass for a
// static pod: with the ContainerCheckpoint gate off its restore is refused
// as any API pod's (CheckpointNotAllowed, not looked up at all), and
// POST /pods/{ns}/{name}/stop for it must not move the static pod's
// manifest aside.
func TestAPIPodClaimingToBeStatic(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	n := newNode(t)
	n.writeManifest("victim.yaml", podManifest("victim", "default", "Always", "exec sleep 3600"))
	n.startKnode("--kubeconfig", cp.nodeKubeconfig(t, n),
		"--feature-gates", "ContainerCheckpoint=false")
	n.waitRunning("default", "victim", "main")
	ctx := context.Background()
	cp.defaultServiceAccount(t)
	victimManifest := filepath.Join(n.manifests, "victim.yaml")
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: "default", Annotations: map[string]string{
		"kubernetes.io/config.source":      "file",
		"knode.io/config.file":             victimManifest,
		"checkpoint.knode.io/restore-main": "checkpoint-x_default-main-2026-01-01T00:00:00Z.tar",
	}}, Spec: v1.PodSpec{NodeName: n.name, AutomountServiceAccountToken: new(bool), TerminationGracePeriodSeconds: new(int64),
		Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}}
	if _, err := cp.core.Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var reason, message string
	n.eventually(60*time.Second, "the tenant pod's restore to be decided", func() bool {
		p, err := cp.core.Pods("default").Get(ctx, "tenant", metav1.GetOptions{})
		if err != nil {
			return false
		}
		reason, message = p.Status.Reason, p.Status.Message
		return reason != ""
	})
	if reason != "CheckpointNotAllowed" {
		t.Errorf("restore of an API pod with the gate off: %s (%s), want CheckpointNotAllowed", reason, message)
	}

	req, _ := http.NewRequest("POST", n.url()+"/pods/default/tenant/stop", nil)
	resp, err := n.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := os.Stat(victimManifest); err != nil {
		t.Fatalf("stopping the API pod moved the static pod's manifest (%d %s): %v", resp.StatusCode, body, err)
	}
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /pods/default/tenant/stop: %d %s, want 404", resp.StatusCode, body)
	}
}

// A pod writes 4 MiB into a disk emptyDir limited to 1 MiB: the emptyDir
// shares the node's root file system with the host, so the limit must hold
// (the kubelet evicts such a pod); knode accepted it and ignored it.
func TestEmptyDirSizeLimitEvicts(t *testing.T) {
	t.Parallel()
	cp, n := newClusterNode(t)
	ctx := context.Background()
	limit := resource.MustParse("1Mi")
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "filler", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: n.name, AutomountServiceAccountToken: new(bool), TerminationGracePeriodSeconds: new(int64),
			Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c", "dd if=/dev/zero of=/scratch/fill bs=1048576 count=4 && exec sleep 3600"},
				VolumeMounts: []v1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}}},
			Volumes: []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{SizeLimit: &limit}}}}}}
	if _, err := cp.core.Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var status v1.PodStatus
	n.eventually(90*time.Second, "the pod evicted for its emptyDir", func() bool {
		p, err := cp.core.Pods("default").Get(ctx, "filler", metav1.GetOptions{})
		if err != nil {
			return false
		}
		status = p.Status
		return p.Status.Phase == v1.PodFailed
	})
	if status.Reason != "Evicted" || status.Message != `Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". ` {
		t.Fatalf("status %s %q", status.Reason, status.Message)
	}
}
