package doctor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"knode.io/knode/internal/pods"
)

func TestMountsDockerSocket(t *testing.T) {
	for _, tt := range []struct {
		path string
		want bool
	}{
		{"/var/run/docker.sock", true},
		{"/run/docker.sock", true},
		{"/var/run", true},
		{"/var/run/", true},
		{"/run", true},
		{"/", true},
		{"/var/run/dockershim.sock", true},
		{"/var/lib/data", false},
		{"/run/containerd/containerd.sock", false},
	} {
		pod := &v1.Pod{Spec: v1.PodSpec{Volumes: []v1.Volume{{Name: "v", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: tt.path}}}}}}
		if _, got := pods.MountsDockerSocket(pod); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestDockershimArea(t *testing.T) {
	dir := t.TempDir()
	manifests := filepath.Join(dir, "m")
	os.MkdirAll(manifests, 0o755)
	os.WriteFile(filepath.Join(manifests, "agent.yaml"), []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  volumes: [{name: run, hostPath: {path: /var/run}}]\n  containers: [{name: c, image: i}]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "daemon.json"), []byte(`{"registry-mirrors": ["https://mirror.example"]}`), 0o644)
	r, err := Run(t.Context(), Env{RootDir: dir, ManifestDir: manifests, Endpoint: "unix:///var/run/dockershim.sock",
		DockerConfig: filepath.Join(dir, "daemon.json")}, "dockershim")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	r.Print(&out)
	for _, want := range []string{"agent.yaml mounts /var/run", "is Docker's", "registry mirror", `[host."https://mirror.example"]`, `location = "mirror.example"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if !r.HasProblem() {
		t.Error("a dockershim endpoint must be a problem")
	}
}

func TestDockershimBoundPods(t *testing.T) {
	mounting := v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "log-agent", Namespace: "ops"},
		Spec: v1.PodSpec{Volumes: []v1.Volume{{Name: "run", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/run"}}}}}}
	plain := v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}}
	tests := []struct {
		name   string
		list   func(context.Context) ([]v1.Pod, error)
		status Status
		check  string
		text   string
	}{
		{"a bound pod mounts /run", func(context.Context) ([]v1.Pod, error) { return []v1.Pod{plain, mounting}, nil },
			Warning, "bound pod", "pod ops/log-agent mounts /run"},
		{"none does", func(context.Context) ([]v1.Pod, error) { return []v1.Pod{plain}, nil },
			OK, "bound pods", "none of the 1 pods bound to this node"},
		{"the API server does not answer", func(context.Context) ([]v1.Pod, error) { return nil, errors.New("connection refused") },
			Warning, "bound pods", "cannot list the pods bound to this node: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Run(t.Context(), Env{RootDir: t.TempDir(), BoundPods: tt.list, DockerConfig: "/nonexistent"}, "dockershim")
			if err != nil {
				t.Fatal(err)
			}
			expect(t, r, "dockershim", tt.check, tt.status, tt.text)
		})
	}
}
