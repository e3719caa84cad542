package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/containerd"
	"knode.io/knode/test/images"
)

const busybox = "knode.local/busybox:1.36"

func podManifest(name, namespace, restartPolicy, command string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
spec:
  restartPolicy: %s
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: %s
    command: ["sh", "-c", %q]
`, name, namespace, restartPolicy, busybox, command)
}

func TestStaticPodRunsAndLogs(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("hello.yaml", podManifest("hello", "default", "Always",
		`echo "hello from $(hostname)"; exec sleep 3600`))
	n.startKnode()
	c := n.waitRunning("default", "hello", "main")
	n.eventually(20*time.Second, "log line in the CRI log file", func() bool {
		return strings.Contains(n.logFile("default", "hello", "main"), "stdout F hello from "+n.podName("hello"))
	})
	sb := n.sandboxes("default", "hello")
	if len(sb) != 1 || sb[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("want one ready sandbox, got %v", sb)
	}
	if got := sb[0].Labels["io.kubernetes.pod.uid"]; got == "" || got != c.Labels["io.kubernetes.pod.uid"] {
		t.Fatalf("sandbox and container disagree on pod uid: %q vs %q", got, c.Labels["io.kubernetes.pod.uid"])
	}
	if c.Annotations["io.kubernetes.container.restartCount"] != "0" {
		t.Fatalf("restartCount annotation = %q, want 0", c.Annotations["io.kubernetes.container.restartCount"])
	}
	// The kubelet's symlink for log agents points at the CRI log file.
	// knode makes it just after StartContainer returns, as the kubelet does:
	// the container may run (and log) a moment before the link exists.
	link := filepath.Join(n.dir, "containers", n.podName("hello")+"_default_main-"+c.Id+".log")
	n.eventually(20*time.Second, "the log symlink "+link, func() bool {
		data, err := os.ReadFile(link)
		return err == nil && strings.Contains(string(data), "stdout F hello from")
	})
	n.removeManifest("hello.yaml")
	n.eventually(60*time.Second, "the symlink removed with the container", func() bool {
		_, err := os.Lstat(link)
		return os.IsNotExist(err)
	})
}

func TestRestartPolicies(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("always.yaml", podManifest("always", "default", "Always", `echo run; exit 3`))
	n.writeManifest("onfailure-ok.yaml", podManifest("onfailure-ok", "default", "OnFailure", `echo done; exit 0`))
	n.writeManifest("never.yaml", podManifest("never", "default", "Never", `echo once; exit 1`))
	n.startKnode()

	// Always: restarted, with back-off growing between restarts.
	var instances []*runtimeapi.Container
	n.eventually(90*time.Second, "three instances of a crashing container", func() bool {
		instances = n.containers("default", "always", "main")
		for _, c := range instances {
			if c.Annotations["io.kubernetes.container.restartCount"] == "2" && c.State != runtimeapi.ContainerState_CONTAINER_CREATED {
				return n.containerStatus(c.Id).StartedAt > 0
			}
		}
		return false
	})
	// Gaps between an exit and the next start: the first restart is
	// immediate, the next waits for the back-off. Compare them as a ratio.
	byCount := map[string]*runtimeapi.ContainerStatus{}
	for _, c := range instances {
		// knode keeps the newest two instances; an older one may be removed meanwhile.
		resp, err := n.cri.ContainerStatus(context.Background(), c.Id, false)
		if err == nil {
			byCount[c.Annotations["io.kubernetes.container.restartCount"]] = resp.Status
		}
	}
	s1, s2 := byCount["1"], byCount["2"]
	if s1 == nil || s2 == nil {
		t.Fatalf("want instances 1 and 2 kept, got %v", keys(byCount))
	}
	gap2 := time.Duration(s2.StartedAt - s1.FinishedAt)
	if s0 := byCount["0"]; s0 != nil {
		gap1 := time.Duration(s1.StartedAt - s0.FinishedAt)
		if gap2 < 3*gap1 {
			t.Fatalf("back-off did not grow: first restart after %s, second after %s", gap1, gap2)
		}
	}
	if gap2 < 5*time.Second {
		t.Fatalf("second restart came %s after the exit; the crash-loop back-off is 10 s", gap2)
	}

	// OnFailure with exit 0 and Never: run once, never restarted.
	for _, pod := range []string{"onfailure-ok", "never"} {
		n.eventually(30*time.Second, pod+" exited", func() bool {
			cs := n.containers("default", pod, "main")
			return len(cs) == 1 && cs[0].State == runtimeapi.ContainerState_CONTAINER_EXITED
		})
	}
	time.Sleep(3 * time.Second)
	for _, pod := range []string{"onfailure-ok", "never"} {
		if cs := n.containers("default", pod, "main"); len(cs) != 1 {
			t.Fatalf("%s: want exactly one instance, got %d", pod, len(cs))
		}
		// A finished pod's sandbox is stopped, as the kubelet does.
		n.eventually(20*time.Second, pod+" sandbox stopped", func() bool {
			sb := n.sandboxes("default", pod)
			return len(sb) == 1 && sb[0].State == runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestInitContainersRunFirst(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("web.yaml", `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: demo}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: first
    image: `+busybox+`
    command: ["sh", "-c", "echo one > /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: `+busybox+`
    command: ["sh", "-c", "sleep 1; echo two >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: `+busybox+`
    command: ["sh", "-c", "echo order: $(cat /work/order | tr '\\n' ' '); exec sleep 3600"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: mem
    image: `+busybox+`
    command: ["sh", "-c", "echo mem: $(grep ' /mem ' /proc/mounts | cut -d' ' -f3); exec sleep 3600"]
    volumeMounts: [{name: mem, mountPath: /mem}]
  volumes:
  - {name: work, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
`)
	n.startKnode()
	app := n.waitRunning("demo", "web", "app")
	n.eventually(20*time.Second, "app log", func() bool {
		return strings.Contains(n.logFile("demo", "web", "app"), "order: one two")
	})
	n.eventually(20*time.Second, "a tmpfs emptyDir for medium Memory", func() bool {
		return strings.Contains(n.logFile("demo", "web", "mem"), "mem: tmpfs")
	})
	appStarted := n.containerStatus(app.Id).StartedAt
	var prevFinished int64
	for _, name := range []string{"first", "second"} {
		cs := n.containers("demo", "web", name)
		if len(cs) != 1 {
			t.Fatalf("init container %s: want 1 instance, got %d", name, len(cs))
		}
		st := n.containerStatus(cs[0].Id)
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 {
			t.Fatalf("init container %s: state %v exit %d", name, st.State, st.ExitCode)
		}
		if st.StartedAt < prevFinished {
			t.Fatalf("init container %s started before the previous one finished", name)
		}
		prevFinished = st.FinishedAt
	}
	if appStarted < prevFinished {
		t.Fatalf("app started before the init containers finished")
	}
}

func TestManifestEditReplacesAndDeleteRemoves(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("svc.yaml", podManifest("svc", "default", "Always", `echo v1; exec sleep 3600`))
	n.startKnode()
	first := n.waitRunning("default", "svc", "main")
	oldSandbox := first.PodSandboxId

	n.writeManifest("svc.yaml", podManifest("svc", "default", "Always", `echo v2; exec sleep 3600`))
	n.eventually(60*time.Second, "the edited pod running in a new sandbox, the old one removed", func() bool {
		c := n.running("default", "svc", "main")
		if c == nil || c.PodSandboxId == oldSandbox {
			return false
		}
		for _, sb := range n.sandboxes("default", "svc") {
			if sb.Id == oldSandbox {
				return false
			}
		}
		return true
	})
	n.eventually(20*time.Second, "v2 output", func() bool {
		return strings.Contains(n.logFile("default", "svc", "main"), "stdout F v2")
	})

	n.removeManifest("svc.yaml")
	n.eventually(60*time.Second, "sandbox and containers removed", func() bool {
		return len(n.sandboxes("default", "svc")) == 0 && len(n.containers("default", "svc", "")) == 0
	})
	n.eventually(10*time.Second, "pod log directory removed", func() bool {
		matches, _ := filepath.Glob(filepath.Join(n.logs, "default_"+n.podName("svc")+"_*"))
		return len(matches) == 0
	})
}

func TestGracefulTermination(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	// The shell traps TERM and records it on the host; knode must send TERM
	// first and wait for the container within the grace period.
	out := filepath.Join(n.dir, "graceful-out")
	n.writeManifest("graceful.yaml", `apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 20
  volumes:
  - {name: out, hostPath: {path: `+out+`, type: DirectoryOrCreate}}
  containers:
  - name: main
    image: `+busybox+`
    volumeMounts: [{name: out, mountPath: /out}]
    command: ["sh", "-c", "trap 'echo got TERM > /out/term; sleep 2; echo bye >> /out/term; exit 0' TERM; echo ready; while true; do sleep 0.2; done"]
`)
	n.startKnode()
	c := n.waitRunning("default", "graceful", "main")
	n.eventually(10*time.Second, "ready", func() bool {
		return strings.Contains(n.logFile("default", "graceful", "main"), "ready")
	})
	n.removeManifest("graceful.yaml")
	n.eventually(60*time.Second, "sandbox removed", func() bool { return len(n.sandboxes("default", "graceful")) == 0 })
	data, err := os.ReadFile(filepath.Join(out, "term"))
	if err != nil || string(data) != "got TERM\nbye\n" {
		t.Fatalf("container %s was not given its grace period: %q (%v)", c.Id, data, err)
	}
}

func TestAdoptsPodsAfterSIGKILL(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("keep.yaml", podManifest("keep", "default", "Always", `exec sleep 3600`))
	n.startKnode()
	before := n.waitRunning("default", "keep", "main")
	n.knode.kill()

	n.startKnode()
	// Give the new knode time to list and sync; nothing may change.
	n.eventually(30*time.Second, "knode synced", func() bool {
		return strings.Count(n.knodeLog(), "knode is running") == 2
	})
	time.Sleep(4 * time.Second)
	cs := n.containers("default", "keep", "main")
	if len(cs) != 1 || cs[0].Id != before.Id || cs[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("want the same running container %s after restart, got %v", before.Id, cs)
	}
	if rc := cs[0].Annotations["io.kubernetes.container.restartCount"]; rc != "0" {
		t.Fatalf("restartCount = %s, want 0", rc)
	}
	if sb := n.sandboxes("default", "keep"); len(sb) != 1 {
		t.Fatalf("want one sandbox, got %d", len(sb))
	}
}

func TestMalformedManifestIsSkipped(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n  - name: x\n    imagee: typo\n")
	n.writeManifest("good.yaml", podManifest("good", "default", "Always", `exec sleep 3600`))
	n.startKnode()
	n.waitRunning("default", "good", "main")
	n.eventually(10*time.Second, "the bad file named in the log", func() bool {
		log := n.knodeLog()
		return strings.Contains(log, filepath.Join(n.manifests, "bad.yaml")) && strings.Contains(log, "imagee")
	})
	if len(n.sandboxes("default", "bad")) != 0 {
		t.Fatal("a sandbox was created for the malformed manifest")
	}
}

func TestRuntimeRestartIsPickedUp(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("before.yaml", podManifest("before", "default", "Always", `exec sleep 3600`))
	n.startKnode()
	before := n.waitRunning("default", "before", "main")

	n.runtime.Stop(20 * time.Second)
	n.eventually(30*time.Second, "knode to notice the runtime is down", func() bool {
		return strings.Contains(n.knodeLog(), "container runtime became unhealthy")
	})
	// A manifest added while the runtime is down runs once it is back.
	n.writeManifest("after.yaml", podManifest("after", "default", "Always", `exec sleep 3600`))
	time.Sleep(2 * time.Second)
	if n.knode.exited() {
		t.Fatal("knode exited when the runtime went away")
	}
	n.startRuntime()
	n.waitRunning("default", "after", "main")
	n.eventually(30*time.Second, "runtime healthy again in the log", func() bool {
		return strings.Contains(n.knodeLog(), "container runtime is healthy again")
	})
	cs := n.containers("default", "before", "main")
	if len(cs) != 1 || cs[0].Id != before.Id || cs[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("the pod that ran before the runtime restart was disturbed: %v", cs)
	}
}

func TestEmbeddedRuntime(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	// This node's own containerd is not used: knode starts one under its root dir.
	n.writeManifest("emb.yaml", podManifest("emb", "default", "Always", `echo embedded; exec sleep 3600`))
	root := filepath.Join(n.dir, "eroot")
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", containerd.BridgeName(containerd.Layout{Dir: filepath.Join(root, "containerd")})).Run()
	})
	n.startKnodeArgs("run",
		"--root-dir", root,
		"--pod-manifest-path", n.manifests,
		"--pod-logs-dir", n.logs,
		"--hostname-override", n.name,
		"--preload-images-dir", imageDir,
		"--address", "127.0.0.1", "--port", strconv.Itoa(n.port),
		"--container-log-symlink-dir", filepath.Join(n.dir, "containers"),
		"--pod-infra-container-image", "registry.k8s.io/pause:3.10",
		"--pod-cidr", nextPodCIDR(),
	)
	n.eventually(60*time.Second, "pod running in the embedded containerd", func() bool {
		return strings.Contains(n.logFile("default", "emb", "main"), "stdout F embedded")
	})
	if _, err := os.Stat(filepath.Join(root, "containerd", "containerd.sock")); err != nil {
		t.Fatalf("embedded containerd socket: %v", err)
	}
	n.removeManifest("emb.yaml")
	n.eventually(60*time.Second, "pod removed from the embedded containerd", func() bool {
		return strings.Contains(n.knodeLog(), "pod sandbox removed")
	})
	if err := n.knode.terminate(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(n.knodeLog(), "started embedded containerd") {
		t.Fatal("knode did not report starting its containerd")
	}
	if _, err := os.Stat(filepath.Join(root, "containerd", "containerd.pid")); !os.IsNotExist(err) {
		t.Fatalf("embedded containerd still recorded as running after knode stopped: %v", err)
	}
}

// Two knodes on one containerd each see only their own pods: neither takes
// the other's for an orphan to remove.
func TestAgentsShareARuntime(t *testing.T) {
	t.Parallel()
	a := newNode(t)
	b := newNodeSharing(t, a)
	for _, n := range []*node{a, b} {
		n.writeManifest("web.yaml", podManifest("web", "default", "Always", `exec sleep 3600`))
		n.startKnode()
	}
	first, second := a.waitRunning("default", "web", "main"), b.waitRunning("default", "web", "main")
	for _, n := range []*node{a, b} {
		n.eventually(30*time.Second, "knode running", func() bool { return strings.Contains(n.knodeLog(), "knode is running") })
	}
	time.Sleep(4 * time.Second) // relists and syncs on both sides
	if c := a.running("default", "web", "main"); c == nil || c.Id != first.Id {
		t.Fatalf("node A's pod was disturbed by node B: %v", c)
	}
	if c := b.running("default", "web", "main"); c == nil || c.Id != second.Id {
		t.Fatalf("node B's pod was disturbed by node A: %v", c)
	}
	var listed struct {
		Items []struct {
			Metadata struct{ Name string }
		}
	}
	_, _, body := a.raw("GET", "/pods")
	if err := json.Unmarshal([]byte(body), &listed); err != nil || len(listed.Items) != 1 || listed.Items[0].Metadata.Name != a.podName("web") {
		t.Fatalf("node A's /pods lists %+v (%v), want only its own pod", listed.Items, err)
	}
	b.removeManifest("web.yaml")
	b.eventually(60*time.Second, "node B's pod removed", func() bool { return len(b.sandboxes("default", "web")) == 0 })
	if c := a.running("default", "web", "main"); c == nil || c.Id != first.Id {
		t.Fatalf("removing node B's pod disturbed node A's: %v", c)
	}
}

// Probes on a real runtime: readiness from an exec probe, liveness over HTTP
// to the pod's IP; a failed liveness probe restarts the container.
func TestProbes(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("probed.yaml", `apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      exec: {command: [cat, /tmp/ready]}
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:
      httpGet: {path: /index.html, port: 8080}
      periodSeconds: 1
      failureThreshold: 2
`)
	n.startKnode()
	first := n.waitRunning("default", "probed", "main")
	type containerStatus struct {
		Ready        bool
		RestartCount int
		ContainerID  string
	}
	status := func() (containerStatus, bool) {
		_, _, body := n.raw("GET", "/pods")
		var list struct {
			Items []struct {
				Metadata struct{ Name string }
				Status   struct{ ContainerStatuses []containerStatus }
			}
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatal(err)
		}
		for _, p := range list.Items {
			if p.Metadata.Name == n.podName("probed") && len(p.Status.ContainerStatuses) == 1 {
				return p.Status.ContainerStatuses[0], true
			}
		}
		return containerStatus{}, false
	}
	exec := func(id string, cmd ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, stderr, err := n.cri.ExecSync(ctx, id, cmd, 5*time.Second); err != nil {
			t.Fatalf("exec %v: %v %s", cmd, err, stderr)
		}
	}
	time.Sleep(3 * time.Second) // several failed readiness probes; the liveness probe passes
	if st, ok := status(); !ok || st.Ready || st.RestartCount != 0 {
		t.Fatalf("before /tmp/ready exists: %+v", st)
	}
	exec(first.Id, "touch", "/tmp/ready")
	n.eventually(20*time.Second, "the container Ready", func() bool { st, _ := status(); return st.Ready })

	// knode restarts: the adopted container stays Ready throughout (the
	// kubelet reports it not ready until its next probe, kubernetes#100277).
	n.knode.kill()
	n.startKnode()
	n.eventually(30*time.Second, "knode serving again", func() bool {
		_, ok := status()
		return ok
	})
	for i := 0; i < 20; i++ {
		if st, _ := status(); !st.Ready || st.RestartCount != 0 {
			t.Fatalf("after a knode restart: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The liveness probe now gets 404: the container is stopped and started again.
	exec(first.Id, "rm", "/www/index.html")
	n.eventually(60*time.Second, "a new instance after the liveness probe failed", func() bool {
		st, _ := status()
		return st.RestartCount == 1 && st.ContainerID != "" && !strings.HasSuffix(st.ContainerID, first.Id)
	})
	// A new instance starts not ready: its /tmp/ready is gone.
	if st, _ := status(); st.Ready {
		t.Fatalf("the new instance is ready before its readiness probe passed: %+v", st)
	}
	if !strings.Contains(n.knodeLog(), `msg="container failed its probe; stopping it"`) {
		t.Fatal("the liveness kill is not in knode's log")
	}
}

// Lifecycle hooks on a real runtime: postStart runs after the start,
// preStop before the stop, both inside the container.
func TestLifecycleHooks(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	out := filepath.Join(n.dir, "hook-out")
	if err := os.MkdirAll(out, 0o777); err != nil {
		t.Fatal(err)
	}
	n.writeManifest("hooked.yaml", `apiVersion: v1
kind: Pod
metadata: {name: hooked}
spec:
  terminationGracePeriodSeconds: 10
  volumes: [{name: out, hostPath: {path: `+out+`}}]
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", "trap 'echo term >> /out/log; exit 0' TERM; while true; do sleep 0.1; done"]
    volumeMounts: [{name: out, mountPath: /out}]
    lifecycle:
      postStart: {exec: {command: ["sh", "-c", "echo postStart >> /out/log"]}}
      preStop: {exec: {command: ["sh", "-c", "echo preStop >> /out/log"]}}
`)
	n.startKnode()
	n.waitRunning("default", "hooked", "main")
	n.eventually(20*time.Second, "the postStart hook's line", func() bool {
		data, _ := os.ReadFile(filepath.Join(out, "log"))
		return string(data) == "postStart\n"
	})
	n.removeManifest("hooked.yaml")
	n.eventually(30*time.Second, "the pod removed", func() bool { return len(n.sandboxes("default", "hooked")) == 0 })
	data, _ := os.ReadFile(filepath.Join(out, "log"))
	if string(data) != "postStart\npreStop\nterm\n" {
		t.Fatalf("hook order: %q, want postStart, preStop, then SIGTERM", data)
	}
}

// A chatty container's log is rotated by size, older rotations gzipped,
// and no more than --container-log-max-files kept.
func TestContainerLogRotation(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("chatty.yaml", podManifest("chatty", "default", "Always",
		`while true; do seq 1 2000; sleep 0.05; done`))
	n.startKnode("--container-log-max-size", "64Ki", "--container-log-max-files", "3")
	n.waitRunning("default", "chatty", "main")
	var files []string
	n.eventually(60*time.Second, "a rotated and a gzipped log", func() bool {
		files, _ = filepath.Glob(filepath.Join(n.logs, "default_"+n.podName("chatty")+"_*", "main", "0.log*"))
		gz, plain := 0, 0
		for _, f := range files {
			switch {
			case strings.HasSuffix(f, ".gz"):
				gz++
			case !strings.HasSuffix(f, "0.log"):
				plain++
			}
		}
		return gz >= 1 && plain >= 1
	})
	time.Sleep(12 * time.Second) // another rotation: the count stays bounded
	files, _ = filepath.Glob(filepath.Join(n.logs, "default_"+n.podName("chatty")+"_*", "main", "0.log*"))
	if len(files) > 3 {
		t.Fatalf("%d log files kept, want at most 3: %v", len(files), files)
	}
	// The runtime writes to the reopened file: the current log grows again.
	current := filepath.Join(filepath.Dir(files[0]), "0.log")
	before, _ := os.Stat(current)
	time.Sleep(time.Second)
	after, _ := os.Stat(current)
	if before == nil || after == nil || after.Size() <= before.Size() && after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("the current log does not grow after rotation: %v %v", before, after)
	}
}

// Image garbage collection on a real runtime: with the thresholds at their
// lowest, the image no container uses goes; the one a pod runs and the
// pinned sandbox image stay.
func TestImageGarbageCollection(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("keep.yaml", podManifest("keep", "default", "Always", `exec sleep 3600`))
	n.startKnode("--image-gc-high-threshold", "1", "--image-gc-low-threshold", "0",
		"--minimum-image-ttl-duration", "0s", "--image-gc-period", "3s")
	n.waitRunning("default", "keep", "main")
	has := func(ref string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := n.cri.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
		return err == nil && resp.GetImage() != nil
	}
	if !has(images.Unused) {
		t.Fatal("the unused test image was not imported")
	}
	n.eventually(30*time.Second, "the unused image removed", func() bool { return !has(images.Unused) })
	time.Sleep(2 * time.Second) // more rounds
	if !has(busybox) || !has(images.Pause) {
		t.Fatalf("an image in use (%v) or the pinned sandbox image (%v) was removed", has(busybox), has(images.Pause))
	}
	if !strings.Contains(n.knodeLog(), `msg="removed unused image"`) {
		t.Fatal("the removal is not in knode's log")
	}
}
