package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
)

// containerState is the container's state in knode's /pods.
func (n *node) containerState(pod, container string) (v1.ContainerState, bool) {
	n.t.Helper()
	_, _, body := n.raw("GET", "/pods")
	var list v1.PodList
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		n.t.Fatalf("decode /pods: %v", err)
	}
	for _, p := range list.Items {
		if p.Name != n.podName(pod) {
			continue
		}
		for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			if cs.Name == container {
				return cs.State, true
			}
		}
	}
	return v1.ContainerState{}, false
}

// waitConfigError waits for the container to be held with
// CreateContainerConfigError naming the subPath, and returns the message.
func (n *node) waitConfigError(pod, container, subPath string) string {
	n.t.Helper()
	var msg string
	n.eventually(60*time.Second, fmt.Sprintf("container %s waiting with CreateContainerConfigError for subPath %q", container, subPath), func() bool {
		st, ok := n.containerState(pod, container)
		if !ok || st.Waiting == nil || st.Waiting.Reason != "CreateContainerConfigError" {
			return false
		}
		msg = st.Waiting.Message
		return strings.Contains(msg, fmt.Sprintf("subPath %q", subPath))
	})
	return msg
}

// podUID is the pod's UID as its sandbox carries it.
func (n *node) podUID(namespace, pod string) string {
	n.t.Helper()
	var uid string
	n.eventually(60*time.Second, "the pod's sandbox", func() bool {
		sbs := n.sandboxes(namespace, pod)
		if len(sbs) == 0 {
			return false
		}
		uid = sbs[0].GetMetadata().GetUid()
		return uid != ""
	})
	return uid
}

func (n *node) emptyDir(uid, volume string) string {
	return filepath.Join(n.rootDir(), "pods", uid, "volumes", "kubernetes.io~empty-dir", volume)
}

// An init container plants a link to / in an emptyDir; the app container's
// subPath through it must not start, and the host's root must not show.
func TestSubPathLinkFromInitContainerIsRefused(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("escape.yaml", `apiVersion: v1
kind: Pod
metadata: {name: escape}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: plant
    image: `+busybox+`
    command: ["sh", "-c", "ln -s / /vol/escape"]
    volumeMounts: [{name: vol, mountPath: /vol}]
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", "ls /host > /dev/termination-log; ls /host; exec sleep 3600"]
    volumeMounts: [{name: vol, mountPath: /host, subPath: escape}]
  volumes:
  - {name: vol, emptyDir: {}}
`)
	n.startKnode()
	msg := n.waitConfigError("escape", "main", "escape")
	if strings.Contains(msg, n.rootDir()) {
		t.Errorf("the refusal shows the host's paths: %q", msg)
	}
	if cs := n.containers("default", "escape", "main"); len(cs) != 0 {
		t.Fatalf("the main container was created: %v", cs)
	}
	if log := n.logFile("default", "escape", "main"); strings.Contains(log, "proc") || strings.Contains(log, "etc") {
		t.Fatalf("the host's root showed in the container: %q", log)
	}
}

// A link to /etc planted by an init container, then a subPath below it that
// does not exist: refused, and nothing is created in the host's /etc.
func TestSubPathMkdirThroughLinkIsRefused(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	newdir := fmt.Sprintf("knode-subpath-test-%d", time.Now().UnixNano())
	t.Cleanup(func() { _ = os.Remove(filepath.Join("/etc", newdir)) })
	n.writeManifest("mkdir.yaml", `apiVersion: v1
kind: Pod
metadata: {name: mkdir}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: plant
    image: `+busybox+`
    command: ["sh", "-c", "ln -s /etc /vol/d"]
    volumeMounts: [{name: vol, mountPath: /vol}]
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", "exec sleep 3600"]
    volumeMounts: [{name: vol, mountPath: /data, subPath: d/`+newdir+`}]
  volumes:
  - {name: vol, emptyDir: {}}
`)
	n.startKnode()
	n.waitConfigError("mkdir", "main", "d/"+newdir)
	if _, err := os.Lstat(filepath.Join("/etc", newdir)); !os.IsNotExist(err) {
		t.Fatalf("/etc/%s was created on the host: %v", newdir, err)
	}
	if cs := n.containers("default", "mkdir", "main"); len(cs) != 0 {
		t.Fatalf("the main container was created: %v", cs)
	}
}

// A container that restarts swaps its own subPath directory for a link
// before it exits; its next incarnation must not get the link's target.
func TestSubPathLinkPlantedBetweenRestartsIsRefused(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("swap.yaml", `apiVersion: v1
kind: Pod
metadata: {name: swap}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", "if [ -e /vol/planted ]; then ls /x > /vol/seen; exec sleep 3600; fi; mv /vol/x /vol/x.old && ln -s / /vol/x && touch /vol/planted; echo planted"]
    volumeMounts:
    - {name: vol, mountPath: /vol}
    - {name: vol, mountPath: /x, subPath: x}
  volumes:
  - {name: vol, emptyDir: {}}
`)
	n.startKnode()
	uid := n.podUID("default", "swap")
	n.eventually(60*time.Second, "the first instance to plant its link", func() bool {
		return strings.Contains(n.logFile("default", "swap", "main"), "planted")
	})
	n.waitConfigError("swap", "main", "x")
	if _, err := os.Stat(filepath.Join(n.emptyDir(uid, "vol"), "seen")); err == nil {
		t.Fatal("a later instance started with the planted subPath")
	}
	if cs := n.containers("default", "swap", "main"); len(cs) != 1 {
		t.Fatalf("want only the first instance, got %d", len(cs))
	}
}

// A legitimate subPath, one reached through a link that stays in the
// volume, and a file subPath all work, and what the container writes lands
// in the volume.
func TestSubPathInsideTheVolumeWorks(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("legit.yaml", `apiVersion: v1
kind: Pod
metadata: {name: legit}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: prepare
    image: `+busybox+`
    command: ["sh", "-c", "mkdir -p /vol/real/dir && ln -s real /vol/link && echo conf-content > /vol/real/conf"]
    volumeMounts: [{name: vol, mountPath: /vol}]
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", "echo written > /data/hello && echo plain > /plain/p && echo conf: $(cat /conf) && exec sleep 3600"]
    volumeMounts:
    - {name: vol, mountPath: /data, subPath: link/dir}
    - {name: vol, mountPath: /conf, subPath: link/conf}
    - {name: vol, mountPath: /plain, subPath: made/by/knode}
  volumes:
  - {name: vol, emptyDir: {}}
`)
	n.startKnode()
	n.waitRunning("default", "legit", "main")
	uid := n.podUID("default", "legit")
	vol := n.emptyDir(uid, "vol")
	n.eventually(30*time.Second, "the container's output", func() bool {
		return strings.Contains(n.logFile("default", "legit", "main"), "conf: conf-content")
	})
	for file, want := range map[string]string{"real/dir/hello": "written\n", "made/by/knode/p": "plain\n"} {
		if data, err := os.ReadFile(filepath.Join(vol, file)); err != nil || string(data) != want {
			t.Errorf("%s in the volume: %q %v", file, data, err)
		}
	}
	// The runtime got knode's bind targets, not paths into the volume.
	for i, kind := range []string{"dir", "file", "dir"} {
		target := filepath.Join(n.rootDir(), "pods", uid, "volume-subpaths", "vol", "main", fmt.Sprint(i))
		st, err := os.Stat(target)
		if err != nil || st.IsDir() != (kind == "dir") {
			t.Errorf("bind target %s: %v %v", target, st, err)
		}
	}
}

// Removing a pod unmounts what is mounted below its directory (subPath
// binds of a hostPath, a mount that appeared inside an emptyDir) before
// removing it, so the directories those mounts show are left alone.
func TestPodTeardownLeavesBoundDirectories(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	host := t.TempDir()
	for _, f := range []string{"sub/keep", "other/keep"} {
		if err := os.MkdirAll(filepath.Join(host, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(host, f), []byte("host data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n.writeManifest("teardown.yaml", `apiVersion: v1
kind: Pod
metadata: {name: teardown}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", "exec sleep 3600"]
    volumeMounts:
    - {name: host, mountPath: /h, subPath: sub}
    - {name: scratch, mountPath: /scratch}
  volumes:
  - {name: host, hostPath: {path: `+host+`, type: Directory}}
  - {name: scratch, emptyDir: {}}
`)
	n.startKnode()
	n.waitRunning("default", "teardown", "main")
	uid := n.podUID("default", "teardown")
	podDir := filepath.Join(n.rootDir(), "pods", uid)
	// A mount inside the emptyDir, as a Bidirectional mount from a
	// container would propagate to the host.
	inside := filepath.Join(n.emptyDir(uid, "scratch"), "b")
	if err := os.Mkdir(inside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(filepath.Join(host, "other"), inside, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(inside, unix.MNT_DETACH) })

	n.removeManifest("teardown.yaml")
	n.eventually(60*time.Second, "the pod's sandbox removed", func() bool {
		return len(n.sandboxes("default", "teardown")) == 0
	})
	// The directory goes just after the sandbox; what matters first is
	// whether its removal reached into the host's directories.
	removed := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(podDir); os.IsNotExist(err) {
			removed = true
			break
		}
	}
	for _, f := range []string{"sub/keep", "other/keep"} {
		if data, err := os.ReadFile(filepath.Join(host, f)); err != nil || string(data) != "host data" {
			t.Errorf("teardown touched %s: %q %v", f, data, err)
		}
	}
	if !removed {
		t.Fatalf("the pod's directory %s was not removed", podDir)
	}
	data, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(data), podDir) {
		t.Errorf("mounts left under %s", podDir)
	}
}

// subPathExpr expands $(POD_NAME) from a fieldRef env var.
func TestSubPathExprFromFieldRef(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("expr.yaml", `apiVersion: v1
kind: Pod
metadata: {name: expr}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", "echo mine > /data/file && exec sleep 3600"]
    env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    volumeMounts:
    - {name: vol, mountPath: /data, subPathExpr: "logs/$(POD_NAME)"}
  - name: bad
    image: `+busybox+`
    command: ["sh", "-c", "exec sleep 3600"]
    env: [{name: UP, value: ".."}]
    volumeMounts:
    - {name: vol, mountPath: /data, subPathExpr: "$(UP)"}
  volumes:
  - {name: vol, emptyDir: {}}
`)
	n.startKnode()
	n.waitRunning("default", "expr", "main")
	uid := n.podUID("default", "expr")
	file := filepath.Join(n.emptyDir(uid, "vol"), "logs", n.podName("expr"), "file")
	n.eventually(30*time.Second, "the file in the expanded subPath", func() bool {
		data, err := os.ReadFile(file)
		return err == nil && string(data) == "mine\n"
	})
	n.eventually(60*time.Second, "the container whose expansion has '..' held", func() bool {
		st, ok := n.containerState("expr", "bad")
		return ok && st.Waiting != nil && st.Waiting.Reason == "CreateContainerConfigError" &&
			st.Waiting.Message == "unable to provision SubPath `..`: must not contain '..'"
	})
}
