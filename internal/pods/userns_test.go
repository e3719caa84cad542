package pods

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/userns"
)

// configRecorder keeps the configs the workers send the runtime.
type configRecorder struct {
	Runtime
	mu         sync.Mutex
	sandboxes  []*runtimeapi.PodSandboxConfig
	containers []*runtimeapi.ContainerConfig
}

func (r *configRecorder) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	r.mu.Lock()
	r.sandboxes = append(r.sandboxes, cfg)
	r.mu.Unlock()
	return r.Runtime.RunPodSandbox(ctx, cfg, handler)
}

func (r *configRecorder) CreateContainer(ctx context.Context, sb string, cfg *runtimeapi.ContainerConfig, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	r.mu.Lock()
	r.containers = append(r.containers, cfg)
	r.mu.Unlock()
	return r.Runtime.CreateContainer(ctx, sb, cfg, sbCfg)
}

func usernsFixture(t *testing.T) (*fixture, *configRecorder) {
	f := newFixture(t)
	rec := &configRecorder{Runtime: f.m.d.Runtime}
	f.m.d.Runtime = rec
	f.m.d.runtimeClasses = runtimeClasses{"userns": "runc-userns"}
	mgr, err := userns.New(userns.Options{PodsDir: filepath.Join(f.m.d.files.RootDir, "pods"), MaxPods: 110,
		Handlers: func() []*runtimeapi.RuntimeHandler {
			return []*runtimeapi.RuntimeHandler{
				{Name: ""}, {Name: "runc"},
				{Name: "runc-userns", Features: &runtimeapi.RuntimeHandlerFeatures{UserNamespaces: true}},
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	f.m.d.files.userns = mgr
	return f, rec
}

func usernsPod(class string) *v1.Pod {
	pod := testPod(v1.RestartPolicyAlways)
	no := false
	pod.Spec.HostUsers = &no
	if class != "" {
		pod.Spec.RuntimeClassName = &class
	}
	pod.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
	return pod
}

// TestUserNamespaceOnASupportingHandler: a hostUsers false pod's sandbox
// and container get its range, each of the container's mounts the
// mappings, and the range is kept in the pod's directory until the pod
// is gone.
func TestUserNamespaceOnASupportingHandler(t *testing.T) {
	f, rec := usernsFixture(t)
	pod := usernsPod("userns")
	w := f.worker(pod)
	f.sync(w)
	f.sync(w)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.sandboxes) != 1 || len(rec.containers) != 1 {
		t.Fatalf("%d sandboxes, %d containers", len(rec.sandboxes), len(rec.containers))
	}
	sbNS := rec.sandboxes[0].GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if sbNS.GetMode() != runtimeapi.NamespaceMode_POD || len(sbNS.GetUids()) != 1 || sbNS.Uids[0].HostId < 65536 || sbNS.Uids[0].HostId%65536 != 0 || sbNS.Uids[0].Length != 65536 {
		t.Fatalf("sandbox userns %v", sbNS)
	}
	c := rec.containers[0]
	if ns := c.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions(); ns.GetMode() != runtimeapi.NamespaceMode_POD || ns.Uids[0].HostId != sbNS.Uids[0].HostId {
		t.Fatalf("container userns %v, sandbox's %v", ns, sbNS)
	}
	if len(c.Mounts) == 0 {
		t.Fatal("no mounts")
	}
	for _, m := range c.Mounts {
		if len(m.UidMappings) != 1 || m.UidMappings[0].HostId != sbNS.Uids[0].HostId || len(m.GidMappings) != 1 {
			t.Errorf("mount %s: mappings %v %v", m.ContainerPath, m.UidMappings, m.GidMappings)
		}
	}
	file := filepath.Join(PodDir(f.m.d.files.RootDir, pod), userns.MappingsFile)
	data, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(data), `"hostId":`) {
		t.Fatalf("mappings file: %s %v", data, err)
	}
	// Gone from sources and runtime: the range is free and its file gone.
	rec.mu.Unlock()
	f.m.SetPods("file", nil)
	for range 3 {
		f.sync(w)
	}
	rec.mu.Lock()
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("mappings file after the pod: %v", err)
	}
	if _, ok := f.m.d.files.userns.(*userns.Manager).Allocated(pod.UID); ok {
		t.Fatal("range still allocated after the pod is gone")
	}
}

// TestUserNamespaceRefusedWithoutSupport: on a handler without user
// namespaces (the default one here) the pod gets no sandbox, Pending with
// the kubelet's reason and message and its event, and no range.
func TestUserNamespaceRefusedWithoutSupport(t *testing.T) {
	for _, tc := range []struct{ class, msg string }{
		{"", "can't set `spec.hostUsers: false`, runtime does not support user namespaces"},
		{"plain", "can't set `spec.hostUsers: false`, RuntimeClass handler \"runc\" does not support user namespaces"},
	} {
		f, rec := usernsFixture(t)
		f.m.d.runtimeClasses = runtimeClasses{"plain": "runc"}
		pod := usernsPod(tc.class)
		st := f.sync(f.worker(pod))
		want := `Failed to generate sandbox config for pod "web-n1_default(uid-1)": ` + tc.msg
		if len(rec.sandboxes) != 0 || st.Phase != v1.PodPending || st.Reason != "CreatePodSandboxError" || st.Message != want {
			t.Errorf("class %q: %d sandboxes, %s %s %q, want %q", tc.class, len(rec.sandboxes), st.Phase, st.Reason, st.Message, want)
		}
		found := false
		for _, e := range f.events.take() {
			found = found || e == "Warning FailedCreatePodSandBox: Failed to create pod sandbox: "+tc.msg
		}
		if !found {
			t.Errorf("class %q: no FailedCreatePodSandBox event", tc.class)
		}
		if _, ok := f.m.d.files.userns.(*userns.Manager).Allocated(pod.UID); ok {
			t.Errorf("class %q: a refused pod got a range", tc.class)
		}
	}
	// Without a user namespace manager a hostUsers false pod never runs in
	// the host's.
	f := newFixture(t)
	st := f.sync(f.worker(usernsPod("")))
	if st.Reason != "CreatePodSandboxError" || !strings.Contains(st.Message, "user namespaces are not set up") {
		t.Errorf("without a manager: %s %q", st.Reason, st.Message)
	}
}
