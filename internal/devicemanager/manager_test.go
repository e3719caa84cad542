package devicemanager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"knode.io/knode/test/deviceplugin"
)

const res = "example.com/widget"

type fixture struct {
	t   *testing.T
	dir string
	m   *Manager
	ctx context.Context
}

func newFixture(t *testing.T, grace time.Duration) *fixture {
	t.Helper()
	// Short path: unix socket names are limited to 108 bytes.
	dir, err := os.MkdirTemp("/tmp", "dm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fixture{t: t, dir: dir}
	f.start(grace)
	return f
}

func (f *fixture) start(grace time.Duration) {
	f.t.Helper()
	m, err := New(Options{Dir: f.dir, GracePeriod: grace, CallTimeout: 500 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	if err := m.Start(ctx); err != nil {
		f.t.Fatal(err)
	}
	f.m, f.ctx = m, ctx
}

func (f *fixture) plugin(resourceName, endpoint string, n int, configure ...func(*deviceplugin.Stub)) *deviceplugin.Stub {
	f.t.Helper()
	s := deviceplugin.New(f.dir, resourceName, endpoint, n)
	for _, c := range configure {
		c(s)
	}
	if err := s.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(s.Stop)
	return s
}

func (f *fixture) register(s *deviceplugin.Stub) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return s.Register(ctx)
}

func (f *fixture) resource(name string) (Resource, bool) {
	for _, r := range f.m.Resources() {
		if r.Name == name {
			return r, true
		}
	}
	return Resource{}, false
}

// wait polls until the resource reaches capacity and allocatable.
func (f *fixture) wait(name string, capacity, allocatable int64) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if r, ok := f.resource(name); ok && r.Capacity == capacity && r.Allocatable == allocatable {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	r, _ := f.resource(name)
	f.t.Fatalf("%s: capacity %d allocatable %d, want %d %d", name, r.Capacity, r.Allocatable, capacity, allocatable)
}

func pod(uid string, containers ...v1.Container) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-" + uid, Namespace: "default", UID: types.UID(uid)}, Spec: v1.PodSpec{Containers: containers}}
}

func wants(name string, n int64, resources ...string) v1.Container {
	c := v1.Container{Name: name, Resources: v1.ResourceRequirements{Limits: v1.ResourceList{}}}
	for _, r := range resources {
		c.Resources.Limits[v1.ResourceName(r)] = *apiresource.NewQuantity(n, apiresource.DecimalSI)
	}
	return c
}

func TestRegistrationRules(t *testing.T) {
	f := newFixture(t, time.Minute)
	for _, tt := range []struct {
		name, resource, version, endpoint, want string
	}{
		{"old version", res, "v1alpha1", "a.sock", `"v1alpha1" is not supported`},
		{"no domain", "widget", "", "b.sock", "needs a domain prefix"},
		{"native domain", "kubernetes.io/widget", "", "c.sock", "reserved for native resources"},
		{"bad name", "example.com/Bad Name!", "", "d.sock", "not a qualified name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := f.plugin(tt.resource, tt.endpoint, 1, func(s *deviceplugin.Stub) { s.Version = tt.version })
			err := f.register(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	// An endpoint outside the directory.
	s := deviceplugin.New(f.dir, res, "../escape.sock", 1)
	if err := f.register(s); err == nil || !strings.Contains(err.Error(), "must be a socket file name") {
		t.Fatalf("escaping endpoint: %v", err)
	}
	// A plugin whose options call fails never appears as a resource.
	bad := f.plugin("example.com/broken", "broken.sock", 2, func(s *deviceplugin.Stub) { s.OptionsErr = errors.New("no options") })
	if err := f.register(bad); err == nil {
		t.Fatal("registration succeeded although GetDevicePluginOptions failed")
	}
	r, _ := f.resource("example.com/broken")
	if r.Capacity != 0 || r.Connected || !strings.Contains(r.LastError, "no options") {
		t.Fatalf("failed registration shows as %+v", r)
	}
}

func TestHealthCapacityAndReRegistration(t *testing.T) {
	f := newFixture(t, 300*time.Millisecond)
	s := f.plugin(res, "w.sock", 4)
	if err := f.register(s); err != nil {
		t.Fatal(err)
	}
	f.wait(res, 4, 4)
	s.SetHealth("dev-1", pluginapi.Unhealthy)
	f.wait(res, 4, 3)
	s.SetHealth("dev-1", pluginapi.Healthy)
	f.wait(res, 4, 4)

	// A new registration replaces the endpoint and its device list.
	s2 := f.plugin(res, "w2.sock", 2)
	if err := f.register(s2); err != nil {
		t.Fatal(err)
	}
	f.wait(res, 2, 2)
	if r, _ := f.resource(res); !strings.HasSuffix(r.Endpoint, "w2.sock") {
		t.Fatalf("endpoint %s", r.Endpoint)
	}

	// Killed: allocatable 0, capacity kept; after the grace period capacity 0.
	s2.Stop()
	f.wait(res, 2, 0)
	f.wait(res, 0, 0)
}

func TestBrokenStreamIsRetried(t *testing.T) {
	f := newFixture(t, time.Minute)
	s := f.plugin(res, "flaky.sock", 3, func(s *deviceplugin.Stub) { s.BreakStreams = 2 })
	if err := f.register(s); err != nil {
		t.Fatal(err)
	}
	f.wait(res, 3, 3)
	time.Sleep(time.Second)
	f.wait(res, 3, 3)
	if r, _ := f.resource(res); !r.Connected {
		t.Fatal("the manager gave up on a plugin whose stream broke")
	}
}

func TestAllocation(t *testing.T) {
	f := newFixture(t, time.Minute)
	s := f.plugin(res, "w.sock", 3, func(s *deviceplugin.Stub) {
		s.AllocateFunc = func(ids []string) (*pluginapi.ContainerAllocateResponse, error) {
			return &pluginapi.ContainerAllocateResponse{
				Envs:       map[string]string{"WIDGETS": strings.Join(ids, ","), "SHARED": "widget"},
				Devices:    []*pluginapi.DeviceSpec{{HostPath: "/dev/null", ContainerPath: "/dev/widget", Permissions: "rw"}},
				Mounts:     []*pluginapi.Mount{{HostPath: "/tmp", ContainerPath: "/widget", ReadOnly: true}},
				CdiDevices: []*pluginapi.CDIDevice{{Name: "example.com/widget=" + ids[0]}},
			}, nil
		}
	})
	other := f.plugin("example.com/gadget", "g.sock", 1, func(s *deviceplugin.Stub) {
		s.AllocateFunc = func([]string) (*pluginapi.ContainerAllocateResponse, error) {
			return &pluginapi.ContainerAllocateResponse{Envs: map[string]string{"SHARED": "gadget"}}, nil
		}
	})
	for _, p := range []*deviceplugin.Stub{s, other} {
		if err := f.register(p); err != nil {
			t.Fatal(err)
		}
	}
	f.wait(res, 3, 3)
	f.wait("example.com/gadget", 1, 1)

	p1 := pod("u1", wants("app", 2, res), wants("side", 1, "example.com/gadget"))
	if err := f.m.Allocate(context.Background(), p1); err != nil {
		t.Fatal(err)
	}
	// Allocating again (a restart, an adoption) reuses, without the plugin.
	if err := f.m.Allocate(context.Background(), p1); err != nil || len(s.Allocations()) != 1 {
		t.Fatalf("re-allocation: %v, plugin calls %d", err, len(s.Allocations()))
	}
	cfg := &runtimeapi.ContainerConfig{Envs: []*runtimeapi.KeyValue{{Key: "WIDGETS", Value: []byte("mine")}}}
	f.m.Apply(p1, &p1.Spec.Containers[0], cfg)
	envs := map[string]string{}
	for _, e := range cfg.Envs {
		if _, seen := envs[e.Key]; !seen {
			envs[e.Key] = string(e.Value)
		}
	}
	if envs["SHARED"] != "widget" || len(cfg.Devices) != 1 || cfg.Devices[0].ContainerPath != "/dev/widget" ||
		len(cfg.Mounts) != 1 || len(cfg.CDIDevices) != 1 {
		t.Fatalf("merged config: envs %v devices %v mounts %v cdi %v", envs, cfg.Devices, cfg.Mounts, cfg.CDIDevices)
	}
	if string(cfg.Envs[len(cfg.Envs)-1].Value) != "mine" {
		t.Fatal("the container's own env must come last, so it wins")
	}

	// Insufficient devices: the kubelet's UnexpectedAdmissionError.
	err := f.m.Allocate(context.Background(), pod("u2", wants("app", 2, res)))
	var ae *AdmissionError
	if !errors.As(err, &ae) || ae.Reason() != "UnexpectedAdmissionError" || !strings.Contains(err.Error(), "requested 2 of example.com/widget, but only 1 are available") {
		t.Fatalf("insufficient: %v", err)
	}
	// An unregistered resource.
	if err := f.m.Allocate(context.Background(), pod("u3", wants("app", 1, "example.com/none"))); !errors.As(err, &ae) {
		t.Fatalf("unregistered: %v", err)
	}
	// Release frees the devices.
	f.m.Release("u1")
	if err := f.m.Allocate(context.Background(), pod("u2", wants("app", 3, res))); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestInitAndSidecarContainers(t *testing.T) {
	f := newFixture(t, time.Minute)
	s := f.plugin(res, "w.sock", 3)
	if err := f.register(s); err != nil {
		t.Fatal(err)
	}
	f.wait(res, 3, 3)
	always := v1.ContainerRestartPolicyAlways
	sidecar := wants("sidecar", 1, res)
	sidecar.RestartPolicy = &always
	p := pod("u1", wants("app", 2, res))
	p.Spec.InitContainers = []v1.Container{wants("init", 2, res), sidecar}
	if err := f.m.Allocate(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	got := f.m.PodDevices("u1")
	ids := func(c string) string {
		var all []string
		for _, d := range got[c] {
			all = append(all, d.Devices...)
		}
		return strings.Join(all, ",")
	}
	// The sidecar may take one of the finished init container's devices and
	// keeps it; the app reuses the other and never shares the sidecar's.
	if ids("init") != "dev-0,dev-1" || ids("sidecar") != "dev-0" || ids("app") != "dev-1,dev-2" {
		t.Fatalf("init %q sidecar %q app %q", ids("init"), ids("sidecar"), ids("app"))
	}
}

func TestPreferredAllocationAndNUMA(t *testing.T) {
	f := newFixture(t, time.Minute)
	numa := func(id string, node int64) *pluginapi.Device {
		return &pluginapi.Device{ID: id, Health: pluginapi.Healthy, Topology: &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: node}}}}
	}
	s := f.plugin(res, "numa.sock", 0)
	s.SetDevices([]*pluginapi.Device{numa("a0", 0), numa("b1", 1), numa("c1", 1), numa("d0", 0), numa("e0", 0)})
	if err := f.register(s); err != nil {
		t.Fatal(err)
	}
	f.wait(res, 5, 5)
	if err := f.m.Allocate(context.Background(), pod("u1", wants("app", 2, res))); err != nil {
		t.Fatal(err)
	}
	// Two devices fit on either node; the node with fewer spare devices (1) is chosen.
	if d := f.m.PodDevices("u1")["app"]; len(d) != 1 || strings.Join(d[0].Devices, ",") != "b1,c1" || d[0].NUMA[0] != 1 {
		t.Fatalf("NUMA choice %+v", d)
	}

	p := f.plugin("example.com/pref", "pref.sock", 4, func(s *deviceplugin.Stub) {
		s.PreferredAllocation = true
		s.PreferFunc = func(available, _ []string, size int) []string { return []string{"dev-3", "not-a-device"} }
	})
	if err := f.register(p); err != nil {
		t.Fatal(err)
	}
	f.wait("example.com/pref", 4, 4)
	if err := f.m.Allocate(context.Background(), pod("u2", wants("app", 2, "example.com/pref"))); err != nil {
		t.Fatal(err)
	}
	allocs := p.Allocations()
	if len(allocs) != 1 || !contains(allocs[0], "dev-3") || contains(allocs[0], "not-a-device") || len(allocs[0]) != 2 {
		t.Fatalf("preferred allocation not honored within the candidates: %v", allocs)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestStuckAllocateIsolated(t *testing.T) {
	f := newFixture(t, time.Minute)
	stuck := f.plugin("example.com/stuck", "stuck.sock", 2, func(s *deviceplugin.Stub) { s.AllocateDelay = time.Hour })
	fine := f.plugin(res, "fine.sock", 2)
	for _, p := range []*deviceplugin.Stub{stuck, fine} {
		if err := f.register(p); err != nil {
			t.Fatal(err)
		}
	}
	f.wait("example.com/stuck", 2, 2)
	f.wait(res, 2, 2)
	stuckDone := make(chan error, 1)
	go func() {
		stuckDone <- f.m.Allocate(context.Background(), pod("slow", wants("app", 1, "example.com/stuck")))
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := f.m.Allocate(context.Background(), pod("quick", wants("app", 1, res))); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Allocate(context.Background(), pod("none", v1.Container{Name: "app"})); err != nil {
		t.Fatal(err)
	}
	quick := time.Since(start)
	err := <-stuckDone
	slow := time.Since(start)
	var ae *AdmissionError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "DeadlineExceeded") {
		t.Fatalf("stuck plugin: %v", err)
	}
	// Ratio, not a timing assertion: the others finished well before the stuck call timed out.
	if quick*4 > slow {
		t.Fatalf("allocation of other resources waited for the stuck plugin (%s vs %s)", quick, slow)
	}
}

func TestCheckpointRestoreAndRetain(t *testing.T) {
	f := newFixture(t, time.Minute)
	s := f.plugin(res, "w.sock", 4)
	if err := f.register(s); err != nil {
		t.Fatal(err)
	}
	f.wait(res, 4, 4)
	for _, uid := range []string{"keep", "gone"} {
		if err := f.m.Allocate(context.Background(), pod(uid, wants("app", 2, res))); err != nil {
			t.Fatal(err)
		}
	}
	before := f.m.PodDevices("keep")
	// The containers started (PreStart makes the allocation durable), then
	// knode restarts: a new manager on the same directory.
	if err := f.m.PreStart(context.Background(), pod("keep", wants("app", 2, res)), &v1.Container{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	f.start(time.Minute)
	if r, _ := f.resource(res); r.Capacity != 0 || len(r.Allocations) != 2 {
		t.Fatalf("after restart, before the plugin re-registers: %+v", r)
	}
	// A new pod waits for the plugin instead of failing.
	if err := f.m.Allocate(context.Background(), pod("new", wants("app", 1, res))); !errors.Is(err, ErrPluginNotReady) {
		t.Fatalf("new pod before re-registration: %v", err)
	}
	// The pod that had devices gets the same ones, without the plugin.
	if err := f.m.Allocate(context.Background(), pod("keep", wants("app", 2, res))); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.m.PodDevices("keep")) != fmt.Sprint(before) {
		t.Fatalf("allocation changed across restart: %v vs %v", f.m.PodDevices("keep"), before)
	}
	f.m.Retain(map[types.UID]bool{"keep": true})
	if len(f.m.PodDevices("gone")) != 0 {
		t.Fatal("a pod deleted while knode was down kept its devices")
	}
	if _, err := os.Stat(filepath.Join(f.dir, "kubelet_internal_checkpoint")); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptCheckpointStartsEmpty(t *testing.T) {
	dir, _ := os.MkdirTemp("/tmp", "dm")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "kubelet_internal_checkpoint"), []byte(`{"Data":{"PodDeviceEntries":[{"PodUID":"x","ContainerName":"c","ResourceName":"a/b","DeviceIDs":{"-1":["d"]}}],"RegisteredDevices":{"a/b":["d"]}},"Checksum":1}`), 0o600)
	m, err := New(Options{Dir: dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Resources()) != 0 || len(m.PodDevices("x")) != 0 {
		t.Fatal("a corrupt checkpoint's allocations were used")
	}
}

func TestLargeDeviceList(t *testing.T) {
	f := newFixture(t, time.Minute)
	s := f.plugin(res, "big.sock", 0)
	devices := make([]*pluginapi.Device, 250000)
	for i := range devices {
		devices[i] = &pluginapi.Device{ID: fmt.Sprintf("widget-%06d", i), Health: pluginapi.Healthy}
	}
	s.SetDevices(devices)
	if err := f.register(s); err != nil {
		t.Fatal(err)
	}
	f.wait(res, 250000, 250000)
}
