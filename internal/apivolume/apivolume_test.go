package apivolume

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// apiObjects is an in-memory API server for volumes.
type apiObjects struct {
	configMaps map[string]map[string][]byte
	secrets    map[string]map[string][]byte
	tokens     int // TokenRequests answered
}

func (a *apiObjects) ConfigMap(_ context.Context, _, name string) (map[string][]byte, error) {
	data, ok := a.configMaps[name]
	if !ok {
		return nil, fmt.Errorf("configmaps %q not found", name)
	}
	return data, nil
}

func (a *apiObjects) Secret(_ context.Context, _, name string) (map[string][]byte, error) {
	data, ok := a.secrets[name]
	if !ok {
		return nil, fmt.Errorf("secrets %q not found", name)
	}
	return data, nil
}

func (a *apiObjects) ServiceAccountToken(context.Context, *v1.Pod, string, int64) (string, error) {
	a.tokens++
	return fmt.Sprintf("token-%d", a.tokens), nil
}

func TestAPIVolumesFollowTheirObjects(t *testing.T) {
	objects := &apiObjects{configMaps: map[string]map[string][]byte{"settings": {"a": []byte("1"), "b": []byte("2")}}}
	now := time.Unix(1_800_000_000, 0)
	vols := New(Config{Objects: objects, Now: func() time.Time { return now }})
	st := NewPodState()
	podDir := podDirForTest(t)
	write := func(pod *v1.Pod, vol *v1.Volume) (string, error) {
		return vols.Write(context.Background(), st, pod, vol, podDir)
	}
	refresh := func(pod *v1.Pod) {
		for i := range pod.Spec.Volumes {
			_, _ = write(pod, &pod.Spec.Volumes[i])
		}
	}
	exp := int64(3600)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-v"},
		Spec: v1.PodSpec{Volumes: []v1.Volume{
			{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}}}},
			{Name: "token", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
				{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &exp}}}}}},
		}}}
	cmDir, err := write(pod, &pod.Spec.Volumes[0])
	if err != nil {
		t.Fatal(err)
	}
	tokenDir, err := write(pod, &pod.Spec.Volumes[1])
	if err != nil {
		t.Fatal(err)
	}
	read := func(dir, name string) string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(data)
	}
	dataTarget := func() string { target, _ := os.Readlink(filepath.Join(cmDir, "..data")); return target }
	first := dataTarget()

	steps := []struct {
		name        string
		change      func()
		advance     time.Duration
		wantFiles   map[string]string // "" = the file must not exist
		wantToken   string
		wantRewrite bool
	}{
		{"nothing changed: nothing written, the token reused", func() {}, time.Minute,
			map[string]string{"a": "1", "b": "2"}, "token-1", false},
		{"a value changed", func() { objects.configMaps["settings"]["a"] = []byte("one") }, time.Minute,
			map[string]string{"a": "one", "b": "2"}, "token-1", true},
		{"a key removed", func() { delete(objects.configMaps["settings"], "b") }, time.Minute,
			map[string]string{"a": "one", "b": ""}, "token-1", true},
		{"the object unreadable: the old content stays", func() { delete(objects.configMaps, "settings") }, time.Minute,
			map[string]string{"a": "one", "b": ""}, "token-1", false},
		{"the token at 80% of its hour is renewed", func() {}, 45 * time.Minute,
			map[string]string{"a": "one"}, "token-2", false},
	}
	for _, step := range steps {
		before := dataTarget()
		step.change()
		now = now.Add(step.advance)
		refresh(pod)
		for name, want := range step.wantFiles {
			got := read(cmDir, name)
			if want == "" {
				if _, err := os.Lstat(filepath.Join(cmDir, name)); !os.IsNotExist(err) {
					t.Fatalf("%s: %s still exists (%q)", step.name, name, got)
				}
				continue
			}
			if got != want {
				t.Fatalf("%s: %s = %q, want %q", step.name, name, got, want)
			}
		}
		if got := read(tokenDir, "token"); got != step.wantToken {
			t.Fatalf("%s: token %q, want %q", step.name, got, step.wantToken)
		}
		if rewritten := dataTarget() != before; rewritten != step.wantRewrite {
			t.Fatalf("%s: rewritten = %v, want %v", step.name, rewritten, step.wantRewrite)
		}
	}
	if dataTarget() == first {
		t.Fatal("the volume was never rewritten")
	}
}
