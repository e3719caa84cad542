package pods

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"knode.io/knode/internal/apivolume"
)

// TestDownwardAPIVolumeOfAStaticPod: without an API server a downwardAPI
// volume is written (it was refused as unsupported), with the values the
// env var resolver gives, on tmpfs.
func TestDownwardAPIVolumeOfAStaticPod(t *testing.T) {
	root := t.TempDir()
	m, err := NewManager(Options{RootDir: root, RequestTimeout: time.Second, Now: time.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, "file")
	if err != nil {
		t.Fatal(err)
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-d", Labels: map[string]string{"app": "web"}},
		Spec: v1.PodSpec{
			Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
				Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}}}},
			Volumes: []v1.Volume{{Name: "podinfo", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{
				Items: []v1.DownwardAPIVolumeFile{
					{Path: "app", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}},
					{Path: "mem", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory",
						Divisor: resource.MustParse("1Mi")}},
				}}}}},
		}}
	st := apivolume.NewPodState()
	dir, err := m.d.files.volumeHostPath(st, pod, &pod.Spec.Volumes[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if want := filepath.Join(root, "pods", "uid-d", "volumes", "kubernetes.io~downward-api", "podinfo"); dir != want {
		t.Fatalf("dir %s, want %s", dir, want)
	}
	for p, want := range map[string]string{"app": "web", "mem": "64"} {
		if data, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(data) != want {
			t.Fatalf("%s = %q %v, want %q", p, data, err, want)
		}
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Fatalf("not on tmpfs: %#x %v", fs.Type, err)
	}
	pod.Labels["app"] = "api"
	m.d.files.refreshAPIVolumes(st, pod)
	if data, err := os.ReadFile(filepath.Join(dir, "app")); err != nil || string(data) != "api" {
		t.Fatalf("after the refresh app = %q %v", data, err)
	}
}
