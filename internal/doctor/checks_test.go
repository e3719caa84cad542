package doctor

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/checkpoint/retention"
	dmcheckpoint "knode.io/knode/internal/devicemanager/checkpoint"
	"knode.io/knode/test/fakecri"
)

// find returns the first result of area/check.
func find(r *Report, area, check string) (Result, bool) {
	for _, res := range r.Results {
		if res.Area == area && res.Check == check {
			return res, true
		}
	}
	return Result{}, false
}

func expect(t *testing.T, r *Report, area, check string, status Status, text string) {
	t.Helper()
	for _, res := range r.Results {
		if res.Area == area && res.Check == check && res.Status == status && strings.Contains(res.Message, text) {
			return
		}
	}
	var out strings.Builder
	r.Print(&out)
	t.Fatalf("no %s %s/%s mentioning %q in:\n%s", status, area, check, text, out.String())
}

func fakeRuntime(t *testing.T) (*fakecri.Server, string) {
	t.Helper()
	s := fakecri.StartTemp(t)
	return s, "unix://" + s.Socket
}

func TestRuntimeArea(t *testing.T) {
	fake, endpoint := fakeRuntime(t)
	env := Env{RootDir: t.TempDir(), Endpoint: endpoint, KnownSockets: []string{"/nonexistent/crio.sock"}}
	r, err := Run(t.Context(), env, "runtime")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, r, "runtime", "endpoint", OK, "fakecri://1.0.0, CRI v1 (the runtime knode uses)")
	expect(t, r, "runtime", "condition", OK, "RuntimeReady is true")
	expect(t, r, "runtime", "cgroup driver", Warning, "does not report its cgroup driver")

	fake.Fake.FakeStatus = &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: false, Reason: "Broken"}, {Type: runtimeapi.NetworkReady, Status: false, Reason: "NoCNI"},
	}}
	r, _ = Run(t.Context(), env, "runtime")
	expect(t, r, "runtime", "condition", Problem, "RuntimeReady is false: Broken")
	expect(t, r, "runtime", "condition", Warning, "NetworkReady is false: NoCNI")

	r, _ = Run(t.Context(), Env{RootDir: t.TempDir(), Endpoint: "unix:///nonexistent/cri.sock"}, "runtime")
	expect(t, r, "runtime", "endpoint", Problem, "does not exist")
	if !r.HasProblem() {
		t.Fatal("HasProblem")
	}
}

func TestCheckpointArea(t *testing.T) {
	fake, endpoint := fakeRuntime(t)
	root := t.TempDir()
	dir := filepath.Join(root, "checkpoints")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "checkpoint-web_default-app-2026-01-02T03:04:05Z.tar"), make([]byte, 2048), 0o600)
	env := Env{RootDir: root, Endpoint: endpoint, CheckpointGate: false, Retention: retention.Policy{MaxTotalBytes: 1024}}
	r, _ := Run(t.Context(), env, "checkpoint")
	expect(t, r, "checkpoint", "feature gate", Warning, "ContainerCheckpoint is off")
	expect(t, r, "checkpoint", "directory", Problem, "is mode -rwxr-xr-x")
	expect(t, r, "checkpoint", "archives", Warning, "1 archives")
	expect(t, r, "checkpoint", "runtime support", OK, "implements CheckpointContainer")

	os.Chmod(dir, 0o700)
	fake.SetBehavior(fakecri.Behavior{Unimplemented: true})
	env.CheckpointGate = true
	env.Retention = retention.Policy{}
	r, _ = Run(t.Context(), env, "checkpoint")
	expect(t, r, "checkpoint", "feature gate", OK, "on")
	expect(t, r, "checkpoint", "directory", OK, "0700")
	expect(t, r, "checkpoint", "archives", OK, "1 archives")
	expect(t, r, "checkpoint", "runtime support", Problem, "fakecri://1.0.0 does not implement CheckpointContainer")
	if len(fake.Calls()) != 2 {
		t.Fatalf("the probe should call CheckpointContainer once per run, got %d", len(fake.Calls()))
	}
	if _, err := os.Stat(fake.Calls()[0].Request.Location); !os.IsNotExist(err) {
		t.Fatalf("the probe left a file behind")
	}
	if _, ok := find(r, "checkpoint", "criu"); !ok {
		t.Fatal("no CRIU check")
	}
}

func TestDevicesArea(t *testing.T) {
	root, _ := os.MkdirTemp("/tmp", "kd")
	defer os.RemoveAll(root)
	dir := filepath.Join(root, "device-plugins")
	os.MkdirAll(dir, 0o750)
	r, _ := Run(t.Context(), Env{RootDir: root}, "devices")
	expect(t, r, "devices", "registration", Warning, "is not listening")
	expect(t, r, "devices", "checkpoint", OK, "no device allocations")

	ln, err := net.Listen("unix", filepath.Join(dir, "kubelet.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stale, _ := net.Listen("unix", filepath.Join(dir, "gone.sock"))
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	dmcheckpoint.Write(filepath.Join(dir, dmcheckpoint.FileName), nil, map[string][]string{"example.com/w": {"a", "b"}})
	r, _ = Run(t.Context(), Env{RootDir: root}, "devices")
	expect(t, r, "devices", "registration", OK, "is listening")
	expect(t, r, "devices", "plugin socket", Warning, "gone.sock does not answer")
	expect(t, r, "devices", "resource", OK, "example.com/w: 2 devices")
	expect(t, r, "devices", "checkpoint", OK, "checksum valid")

	os.WriteFile(filepath.Join(dir, dmcheckpoint.FileName), []byte(`{"Data":{"PodDeviceEntries":null,"RegisteredDevices":{}},"Checksum":7}`), 0o600)
	r, _ = Run(t.Context(), Env{RootDir: root}, "devices")
	expect(t, r, "devices", "checkpoint", Problem, "checksum mismatch")
}

func TestNodeArea(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o700)
	r, _ := Run(t.Context(), Env{RootDir: root, PodLogsDir: root}, "node")
	expect(t, r, "node", "root dir", OK, "mode")
	expect(t, r, "node", "kernel", OK, "overlay")
	expect(t, r, "node", "disk", OK, "GiB free")
	// This machine has room: no pressure (the thresholds are unit-tested in nodeinfo).
	expect(t, r, "node", "memory pressure", OK, "more than 100 MiB")
	expect(t, r, "node", "disk pressure", OK, "has room")
	os.Chmod(root, 0o777)
	r, _ = Run(t.Context(), Env{RootDir: root, PodLogsDir: root}, "node")
	expect(t, r, "node", "root dir", Problem, "others can write")
	r, _ = Run(t.Context(), Env{RootDir: filepath.Join(root, "missing"), PodLogsDir: root}, "node")
	expect(t, r, "node", "root dir", Warning, "does not exist yet")
}

func TestUnknownArea(t *testing.T) {
	if _, err := Run(t.Context(), Env{}, "nope"); err == nil || !strings.Contains(err.Error(), "unknown area") {
		t.Fatalf("err %v", err)
	}
}
