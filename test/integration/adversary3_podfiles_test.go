package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAdversary3PodVolumesNotReachableByHostUsers: a tenant's root
// container leaves a set-user-ID root program in its emptyDir (a pod with
// a downwardAPI volume first, as an API pod's service account token
// volume usually is). The root dir is searchable by everyone (pods in
// user namespaces need it), so the pod directories below must not be: an
// unprivileged user of the host, who reads pod UIDs in any /proc/<pid>/cgroup,
// must not reach the program and run it as host root. The kubelet keeps
// its pods dir, pod dirs and volume dirs 0750; a pods dir an older knode
// left 0755 is closed at start.
func TestAdversary3PodVolumesNotReachableByHostUsers(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	// As /var/lib on a host: the way to the root dir is searchable.
	if err := os.Chmod(n.dir, 0o711); err != nil {
		t.Fatal(err)
	}
	// An older knode left its pods dir open to everyone.
	if err := os.MkdirAll(filepath.Join(n.rootDir(), "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(n.rootDir(), "pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	n.writeManifest("suid.yaml", `apiVersion: v1
kind: Pod
metadata: {name: suid, labels: {app: suid}}
spec:
  terminationGracePeriodSeconds: 0
  volumes:
  - name: info
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  - {name: data, emptyDir: {}}
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", "cp /bin/busybox /data/bb && chmod 4755 /data/bb && touch /data/done && sleep 3600"]
    volumeMounts: [{name: info, mountPath: /info}, {name: data, mountPath: /data}]
`)
	n.startKnode()
	n.waitRunning("default", "suid", "main")
	pod := n.apiPod(n.podName("suid"))
	if pod == nil {
		t.Fatal("no pod")
	}
	podDir := filepath.Join(n.rootDir(), "pods", string(pod.UID))
	prog := filepath.Join(podDir, "volumes", "kubernetes.io~empty-dir", "data", "bb")
	n.eventually(time.Minute, "the program in the emptyDir", func() bool {
		_, err := os.Stat(filepath.Join(filepath.Dir(prog), "done"))
		return err == nil
	})
	if fi, err := os.Stat(prog); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Fatalf("the container's program: %v %v", fi, err)
	}
	asNobody := func(p string) ([]byte, error) {
		return exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "stat", "-c", "%A %U", p).CombinedOutput()
	}
	// The probe itself works: an unprivileged user reaches what is open to all.
	if out, err := asNobody(n.rootDir()); err != nil {
		t.Fatalf("the probe as an unprivileged user fails on the (searchable) root dir: %v %s", err, out)
	}
	for _, p := range []string{prog, filepath.Join(podDir, "volumes", "kubernetes.io~downward-api", "info", "labels")} {
		out, err := asNobody(p)
		if err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Errorf("an unprivileged host user reaches %s (%v: %s)", p, err, out)
		}
	}
	for _, d := range []string{filepath.Join(n.rootDir(), "pods"), podDir, filepath.Join(podDir, "volumes")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o007 != 0 {
			t.Errorf("%s: %v %v, want no access for others (0750)", d, fi.Mode(), err)
		}
	}
}
