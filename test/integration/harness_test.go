// Package integration runs knode against a real containerd with real pods.
// It needs root, containerd 2.x on PATH, runc and the CNI plugins; `make
// test` sets all of that up and sets KNODE_INTEGRATION=1.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/client"
	"knode.io/knode/internal/containerd"
	"knode.io/knode/internal/cri"
	"knode.io/knode/test/fakecri"
	"knode.io/knode/test/images"
)

var (
	knodeBinary string
	imageDir    string
)

func TestMain(m *testing.M) {
	if os.Getenv("KNODE_INTEGRATION") != "1" {
		fmt.Println("integration tests need root and a container runtime; run them with `make test` (KNODE_INTEGRATION=1)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "knode-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := prepare(dir); err != nil {
		fmt.Fprintln(os.Stderr, "integration setup:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// prepare builds the knode binary and the test images once for all tests.
func prepare(dir string) error {
	knodeBinary = filepath.Join(dir, "knode")
	build := []string{"build", "-tags", "grpcnotrace", "-o", knodeBinary} // as the Makefile builds it
	if os.Getenv("KNODE_RACE") != "" {
		// KNODE_RACE=1 runs the suite against a race-detecting knode.
		build = append(build, "-race")
	}
	cmd := exec.Command("go", append(build, "knode.io/knode/cmd/knode")...)
	// Static, as `make build` makes it, unless the race detector needs cgo.
	if os.Getenv("KNODE_RACE") == "" {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build knode: %v: %s", err, out)
	}
	pause := filepath.Join(dir, "pause")
	cmd = exec.Command("go", "build", "-o", pause, "knode.io/knode/hack/pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build pause: %v: %s", err, out)
	}
	imageDir = filepath.Join(dir, "images")
	if err := os.MkdirAll(imageDir, 0o755); err != nil {
		return err
	}
	if err := images.WritePause(filepath.Join(imageDir, "pause.tar"), pause); err != nil {
		return err
	}
	if err := images.WriteUnused(filepath.Join(imageDir, "unused.tar")); err != nil {
		return err
	}
	memhog := filepath.Join(dir, "memhog")
	cmd = exec.Command("go", "build", "-o", memhog, "knode.io/knode/hack/memhog")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build memhog: %v: %s", err, out)
	}
	return images.WriteBusybox(filepath.Join(imageDir, "busybox.tar"), "/bin/busybox", map[string]string{"memhog": memhog})
}

// node is one test's world: a containerd, a manifest dir, and knode.
type node struct {
	t         *testing.T
	dir       string
	name      string
	manifests string
	logs      string
	runtime   *containerd.Supervisor
	cri       *cri.Runtime
	knode     *knodeProcess
	port      int
	// fake is set for nodes whose runtime is the fake CRI server.
	fake *fakecri.Server
	// criuDir goes first on containerd's PATH, selecting the CRIU runc uses.
	criuDir string
	// containerdDir, if set, holds the containerd build to run (and its shim).
	containerdDir string
	// sharing is the node whose runtime this node's knode uses too.
	sharing *node
	podCIDR string
	// runcHandlers are runtime handlers besides the default one.
	runcHandlers []containerd.RuncHandler
}

// freePort asks the kernel for an unused loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	// A port is picked by listening on :0 and closing again, so the kernel
	// may hand the same one out twice before its first user listens: never
	// give a port to two users in one run.
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if _, taken := portsGiven.LoadOrStore(port, true); !taken {
			return port
		}
	}
}

// portsGiven holds every port freePort has handed out in this test run.
var portsGiven sync.Map

// newNode starts a private containerd with the test images imported.
func newNode(t *testing.T) *node {
	t.Helper()
	n := newBareNode(t)
	n.startRuntime()
	return n
}

// newNodeWithCRIU is newNode whose containerd finds criuBinary as `criu`.
func newNodeWithCRIU(t *testing.T, criuBinary string) *node {
	return newNodeWithRuntime(t, criuBinary, "")
}

// newNodeWithRuntime also runs the containerd build in containerdDir (its
// binary and shim) when set, with restore through CRI enabled.
func newNodeWithRuntime(t *testing.T, criuBinary, containerdDir string) *node {
	t.Helper()
	n := newBareNode(t)
	n.containerdDir = containerdDir
	n.criuDir = filepath.Join(n.dir, "criu-bin")
	if err := os.MkdirAll(n.criuDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(criuBinary, filepath.Join(n.criuDir, "criu")); err != nil {
		t.Fatal(err)
	}
	n.startRuntime()
	return n
}

// newNodeSharing is a node whose knode uses other's runtime.
func newNodeSharing(t *testing.T, other *node) *node {
	t.Helper()
	n := newBareNode(t)
	n.sharing, n.cri = other, other.cri
	return n
}

// newFakeNode runs the fake CRI server instead of containerd.
func newFakeNode(t *testing.T) *node {
	t.Helper()
	n := newBareNode(t)
	fake, err := fakecri.Start(filepath.Join(n.dir, "fake.sock"))
	if err != nil {
		t.Fatal(err)
	}
	n.fake = fake
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := cri.Connect(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), "unix://"+fake.Socket, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n.cri = rt
	return n
}

func (n *node) endpoint() string {
	if n.sharing != nil {
		return n.sharing.endpoint()
	}
	if n.fake != nil {
		return "unix://" + n.fake.Socket
	}
	return n.runtime.Endpoint()
}

func newBareNode(t *testing.T) *node {
	t.Helper()
	// Short paths: containerd's shim sockets live under the state dir and unix
	// socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("/tmp", "kn")
	if err != nil {
		t.Fatal(err)
	}
	n := &node{
		t:         t,
		dir:       dir,
		name:      "it-" + filepath.Base(dir)[2:],
		manifests: filepath.Join(dir, "manifests"),
		logs:      filepath.Join(dir, "logs"),
	}
	n.name = strings.ToLower(n.name)
	n.port = freePort(t)
	n.podCIDR = nextPodCIDR()
	if err := os.MkdirAll(n.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.cleanup)
	return n
}

func (n *node) layout() containerd.Layout {
	return containerd.Layout{Dir: filepath.Join(n.dir, "ctrd")}
}

func (n *node) startRuntime() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := containerd.Options{
		Layout: n.layout(),
		Settings: containerd.Settings{
			SandboxImage:  images.Pause,
			PodCIDR:       n.podCIDR,
			CNIBinDirs:    []string{"/usr/lib/cni"},
			EnableRestore: n.containerdDir != "",
			RuncHandlers:  n.runcHandlers,
		},
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		ExtraPath: nonEmpty(n.criuDir),
	}
	if n.containerdDir != "" {
		opts.Binary = filepath.Join(n.containerdDir, "containerd")
		// The shim is found on PATH: this build's must come first.
		opts.ExtraPath = append(opts.ExtraPath, n.containerdDir)
	}
	sup, err := containerd.Start(ctx, opts)
	if err != nil {
		n.t.Fatalf("start containerd: %v", err)
	}
	n.runtime = sup
	if _, err := containerd.ImportArchives(ctx, sup.Binary(), n.layout().Socket(), imageDir); err != nil {
		n.t.Fatalf("import images: %v", err)
	}
	if n.cri == nil {
		rt, err := cri.Connect(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), sup.Endpoint(), 30*time.Second)
		if err != nil {
			n.t.Fatalf("connect to containerd: %v", err)
		}
		n.cri = rt
	}
}

// podCIDRs counts the pod subnets given out: each test node gets its own
// /24, so bridges (which carry the subnet's first address) never collide.
var podCIDRs atomic.Int32

func nextPodCIDR() string {
	n := int(podCIDRs.Add(1)) + os.Getpid()%50*250
	return fmt.Sprintf("10.%d.%d.0/24", 200+n/250%50, n%250)
}

// cleanup removes every pod from the runtime, then stops it and deletes the files.
func (n *node) cleanup() {
	if n.knode != nil {
		n.knode.kill()
	}
	if n.cri != nil && n.sharing == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		sandboxes, _ := n.cri.ListPodSandbox(ctx, nil)
		for _, sb := range sandboxes {
			_ = n.cri.StopPodSandbox(ctx, sb.Id)
			_ = n.cri.RemovePodSandbox(ctx, sb.Id)
		}
		cancel()
	}
	if n.runtime != nil {
		n.runtime.Stop(20 * time.Second)
		// The pod network's bridge outlives the runtime; test nodes never come back.
		_ = exec.Command("ip", "link", "del", containerd.BridgeName(n.layout())).Run()
	}
	if n.fake != nil {
		n.fake.Stop()
	}
	if n.t.Failed() {
		if data, err := os.ReadFile(filepath.Join(n.dir, "knode.log")); err == nil {
			n.t.Logf("knode log:\n%s", tail(string(data), 60))
		}
	}
	// Anything a failed test left behind (shims of an embedded runtime) goes too.
	_ = exec.Command("pkill", "-9", "-f", n.dir).Run()
	if err := removeCgroupTree(n.cgroupRoot()); err != nil {
		n.t.Errorf("cgroups left behind: %v", err)
	}
	_ = exec.Command("sh", "-c", "grep -o ' "+n.dir+"[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l").Run()
	os.RemoveAll(n.dir)
}

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

type knodeProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// startKnode runs the knode binary against the node's runtime.
func (n *node) startKnode(extra ...string) {
	n.t.Helper()
	args := []string{"run",
		"--root-dir", filepath.Join(n.dir, "root"),
		"--pod-manifest-path", n.manifests,
		"--pod-logs-dir", n.logs,
		"--hostname-override", n.name,
		"--container-runtime-endpoint", n.endpoint(),
		"--address", "127.0.0.1",
		"--port", strconv.Itoa(n.port),
		"--container-log-symlink-dir", filepath.Join(n.dir, "containers"),
		"--log-level", "debug",
	}
	args = append(args, extra...)
	n.startKnodeArgs(args...)
}

func (n *node) startKnodeArgs(args ...string) {
	n.t.Helper()
	logFile, err := os.OpenFile(filepath.Join(n.dir, "knode.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	cmd := exec.Command(knodeBinary, n.withCgroupRoot(args)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start knode: %v", err)
	}
	p := &knodeProcess{cmd: cmd, done: make(chan struct{}), log: logFile}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	n.knode = p
}

func (p *knodeProcess) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *knodeProcess) terminate(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("knode did not stop within %s", timeout)
	}
}

func (p *knodeProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (n *node) knodeLog() string {
	data, _ := os.ReadFile(filepath.Join(n.dir, "knode.log"))
	return string(data)
}

func (n *node) writeManifest(file, content string) {
	n.t.Helper()
	// Write-then-rename, as editors and config tools do, so knode never sees half a file.
	tmp := filepath.Join(n.manifests, "."+file+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(n.manifests, file)); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) removeManifest(file string) {
	n.t.Helper()
	if err := os.Remove(filepath.Join(n.manifests, file)); err != nil {
		n.t.Fatal(err)
	}
}

// podName is the static pod's name on this node.
func (n *node) podName(name string) string { return name + "-" + n.name }

// sandboxes lists the runtime's sandboxes of a pod, any state.
func (n *node) sandboxes(namespace, pod string) []*runtimeapi.PodSandbox {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := n.cri.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{
		"io.kubernetes.pod.name": n.podName(pod), "io.kubernetes.pod.namespace": namespace,
	}})
	if err != nil {
		n.t.Fatalf("list sandboxes: %v", err)
	}
	return list
}

// containers lists a pod's containers named name (all if empty), any state.
func (n *node) containers(namespace, pod, name string) []*runtimeapi.Container {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	selector := map[string]string{"io.kubernetes.pod.name": n.podName(pod), "io.kubernetes.pod.namespace": namespace}
	if name != "" {
		selector["io.kubernetes.container.name"] = name
	}
	list, err := n.cri.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: selector})
	if err != nil {
		n.t.Fatalf("list containers: %v", err)
	}
	return list
}

func (n *node) containerStatus(id string) *runtimeapi.ContainerStatus {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := n.cri.ContainerStatus(ctx, id, false)
	if err != nil {
		n.t.Fatalf("container status %s: %v", id, err)
	}
	return resp.Status
}

// running returns the pod's running container named name, or nil.
func (n *node) running(namespace, pod, name string) *runtimeapi.Container {
	for _, c := range n.containers(namespace, pod, name) {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return c
		}
	}
	return nil
}

// eventually polls cond until it holds or the timeout passes.
func (n *node) eventually(timeout time.Duration, what string, cond func() bool) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		if n.knode != nil && n.knode.exited() {
			n.t.Fatalf("knode exited while waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

func (n *node) waitRunning(namespace, pod, container string) *runtimeapi.Container {
	n.t.Helper()
	var c *runtimeapi.Container
	n.eventually(60*time.Second, fmt.Sprintf("%s/%s container %s running", namespace, pod, container), func() bool {
		c = n.running(namespace, pod, container)
		return c != nil
	})
	return c
}

// logFile returns the content of the pod container's CRI log files.
func (n *node) logFile(namespace, pod, container string) string {
	matches, _ := filepath.Glob(filepath.Join(n.logs, namespace+"_"+n.podName(pod)+"_*", container, "*.log"))
	var buf bytes.Buffer
	for _, m := range matches {
		data, _ := os.ReadFile(m)
		buf.Write(data)
	}
	return buf.String()
}

// rootDir is knode's --root-dir in this node.
func (n *node) rootDir() string { return filepath.Join(n.dir, "root") }

// api returns a client with knode's node-local admin credentials.
func (n *node) api() *client.Client {
	n.t.Helper()
	var c *client.Client
	n.eventually(30*time.Second, "knode's local credentials and its API listening", func() bool {
		var err error
		if c, err = client.New(client.Options{Server: n.url(), RootDir: n.rootDir()}); err != nil {
			return false
		}
		return n.listening()
	})
	return c
}

// listening tells whether knode's API accepts connections: its local
// credentials are written just before it listens.
func (n *node) listening() bool {
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(n.url(), "https://"), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func (n *node) url() string { return "https://127.0.0.1:" + strconv.Itoa(n.port) }

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// tool returns a file that hack/setup-node.sh installs under
// $KNODE_TOOLS_DIR (default /usr/local/lib/knode-ci), or fails the test
// saying which script installs it.
func tool(t *testing.T, script string, parts ...string) string {
	t.Helper()
	dir := os.Getenv("KNODE_TOOLS_DIR")
	if dir == "" {
		dir = "/usr/local/lib/knode-ci"
	}
	p := filepath.Join(append([]string{dir}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is not installed (run %s): %v", p, script, err)
	}
	return p
}
