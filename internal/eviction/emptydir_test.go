package eviction

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
)

// A pod writes more into its disk emptyDir than its sizeLimit: it is
// evicted with the kubelet's message; one within its limit, a static one
// and a memory emptyDir are left alone. No memory threshold is met.
func TestEmptyDirOverItsSizeLimitIsEvicted(t *testing.T) {
	root := t.TempDir()
	m := New(nil, root, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.proc = meminfo(t, 1<<20)
	withVolume := func(name string, limit string, medium v1.StorageMedium, static bool, write int) *v1.Pod {
		p := pod(name, 0, 0, static)
		q := resource.MustParse(limit)
		p.Spec.Volumes = []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: medium, SizeLimit: &q}}}}
		dir := filepath.Join(root, "pods", name, "volumes", "kubernetes.io~empty-dir", "scratch")
		if err := os.MkdirAll(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, write)
		for i := range data {
			data[i] = 1
		}
		if err := os.WriteFile(filepath.Join(dir, "data"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pods := &fakePods{evicted: map[types.UID]string{}, pods: []*v1.Pod{
		withVolume("within", "1Mi", "", false, 100<<10),
		withVolume("static", "1Mi", "", true, 2<<20),
		withVolume("memory", "1Mi", v1.StorageMediumMemory, false, 2<<20),
		withVolume("over", "1Mi", "", false, 2<<20),
	}}
	if uid := m.Synchronize(t.Context(), pods, fakeUsage{}); uid != "over" {
		t.Fatalf("evicted %q, want over (evictions: %v)", uid, pods.evicted)
	}
	if len(pods.disruptions) != 0 {
		t.Fatalf("a local-storage eviction asked for a DisruptionTarget condition (the kubelet sets none): %v", pods.disruptions)
	}
	if msg := pods.evicted["over"]; msg != `Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". ` {
		t.Fatalf("message %q", msg)
	}
	if len(pods.evicted) != 1 {
		t.Fatalf("evictions %v", pods.evicted)
	}
}
