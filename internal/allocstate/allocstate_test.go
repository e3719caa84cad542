package allocstate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const (
	podA = "0b6c9b0e-1a2b-4c3d-8e9f-0123456789ab"
	podB = "7e57ab1e-0000-4000-8000-000000000002"
)

func q(s string) resource.Quantity { return resource.MustParse(s) }

// fixturePods is what the kubelet's code was asked to store (testdata/README.md).
func fixturePods(cpuRequest string) Pods {
	return Pods{
		podA: {
			"app": {Requests: v1.ResourceList{v1.ResourceCPU: q(cpuRequest), v1.ResourceMemory: q("64Mi")},
				Limits: v1.ResourceList{v1.ResourceCPU: q("500m"), v1.ResourceMemory: q("128Mi")}},
			"sidecar": {},
		},
		podB: {"web": {Requests: v1.ResourceList{v1.ResourceMemory: q("1Gi")}}},
	}
}

func equalPods(t *testing.T, got, want Pods) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("pods: got %v, want %v", got, want)
	}
	for uid, wc := range want {
		gc := got[uid]
		if len(gc) != len(wc) {
			t.Fatalf("pod %s: got %v, want %v", uid, gc, wc)
		}
		for name, w := range wc {
			g, ok := gc[name]
			if !ok || !equalList(g.Requests, w.Requests) || !equalList(g.Limits, w.Limits) {
				t.Fatalf("pod %s container %s: got %+v, want %+v", uid, name, g, w)
			}
		}
	}
}

func equalList(a, b v1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}

func TestReadsTheKubeletsFiles(t *testing.T) {
	for name, cpu := range map[string]string{Allocated: "200m", Actuated: "100m"} {
		_, pods, err := Open("testdata", name)
		if err != nil {
			t.Fatalf("%s: the kubelet's own file was refused: %v", name, err)
		}
		equalPods(t, pods, fixturePods(cpu))
	}
}

func TestWritesWhatTheKubeletWrites(t *testing.T) {
	for name, cpu := range map[string]string{Allocated: "200m", Actuated: "100m"} {
		want, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Marshal(fixturePods(cpu))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

func TestWriteIsAtomicPrivateAndReadBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	f, pods, err := Open(dir, Allocated)
	if err != nil || len(pods) != 0 {
		t.Fatalf("a missing file must hold nothing: %v %v", pods, err)
	}
	want := fixturePods("200m")
	if err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, Allocated))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("a temporary file was left: %v", entries)
	}
	_, got, err := Open(dir, Allocated)
	if err != nil {
		t.Fatal(err)
	}
	equalPods(t, got, want)

	// Dropping a pod is written; an empty state is the kubelet's "{}" data.
	delete(want, podB)
	if err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	_, got, _ = Open(dir, Allocated)
	equalPods(t, got, want)
	if err := f.Write(Pods{}); err != nil {
		t.Fatal(err)
	}
	blob, _ := os.ReadFile(filepath.Join(dir, Allocated))
	if string(blob) != `{"data":"{}","checksum":`+strconv.FormatUint(checksum("{}"), 10)+`}` {
		t.Fatalf("empty state: %s", blob)
	}
}

// A file whose checksum does not match, or that is not JSON, is refused
// with the kubelet's message, and nothing is taken from it.
func TestRefusesACorruptFile(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", Allocated))
	if err != nil {
		t.Fatal(err)
	}
	for name, blob := range map[string][]byte{
		"checksum":  bytes.Replace(good, []byte(`2840752253`), []byte(`2840752254`), 1),
		"data":      bytes.Replace(good, []byte(`200m`), []byte(`900m`), 1),
		"truncated": good[:len(good)/2],
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, Allocated), blob, 0o600); err != nil {
			t.Fatal(err)
		}
		f, pods, err := Open(dir, Allocated)
		if err == nil || f != nil || pods != nil {
			t.Fatalf("%s: a corrupt file was accepted: %v", name, pods)
		}
		want := "please drain this node and delete pod resource information checkpoint file \"" + filepath.Join(dir, Allocated) + "\" before restarting Kubelet"
		if !strings.HasPrefix(err.Error(), "could not restore state from checkpoint: ") || !strings.HasSuffix(err.Error(), want) {
			t.Fatalf("%s: message %q", name, err)
		}
		if name != "truncated" && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v is not ErrCorrupt", name, err)
		}
	}
}

// A link planted where the file goes is neither followed on read nor
// written through.
func TestNeverFollowsALink(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, Actuated)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(dir, Actuated); err == nil {
		t.Fatal("a link was read as the checkpoint")
	}
	f := &File{dir: dir, name: Actuated}
	if err := f.Write(fixturePods("100m")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Fatalf("written through the link: %q", b)
	}
	if _, _, err := Open(dir, Actuated); err != nil {
		t.Fatalf("the link was not replaced by the file: %v", err)
	}
}
