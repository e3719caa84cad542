package restore

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testArchive is a small checkpoint archive as containerd writes it: the
// runtime's spec.dump names the pod's namespace.
func testArchive(t testing.TB, namespace string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, v any) {
		data, _ := json.Marshal(v)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	add("config.dump", map[string]any{"id": "abc", "rootfsImageName": "busybox:1", "runtime": "runc"})
	add("spec.dump", map[string]any{
		"annotations": map[string]string{"io.kubernetes.cri.container-name": "app", "io.kubernetes.cri.sandbox-name": "web",
			"io.kubernetes.cri.sandbox-namespace": namespace},
		"process": map[string]any{"args": []string{"sleep", "3600"}},
	})
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeArchive(t testing.TB, path, namespace string) {
	t.Helper()
	if err := os.WriteFile(path, testArchive(t, namespace), 0o600); err != nil {
		t.Fatal(err)
	}
}

func restorePod(namespace, ref string, static bool) (*v1.Pod, *v1.Container) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: namespace,
		Annotations: map[string]string{AnnotationPrefix + "app": ref}}}
	if static {
		pod.Annotations["kubernetes.io/config.source"] = "file"
	}
	c := &v1.Container{Name: "app", Image: "busybox:1"}
	pod.Spec.Containers = []v1.Container{*c}
	return pod, c
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type restoreWorld struct {
	dir, other, outside string
	r                   *Selector
}

// newRestoreWorld: an allowed directory holding an archive of team-a, a
// second allowed directory, and a directory outside both.
func newRestoreWorld(t *testing.T) *restoreWorld {
	return newRestoreWorldAt(t, t.TempDir())
}

// newRestoreWorldAt also plants, for the fuzz test, an archive of another
// namespace, links out of the directory, and a FIFO.
func newRestoreWorldAt(t testing.TB, base string) *restoreWorld {
	w := &restoreWorld{dir: filepath.Join(base, "checkpoints"), other: filepath.Join(base, "extra"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{w.dir, w.other, w.outside} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeArchive(t, filepath.Join(w.dir, "a.tar"), "team-a")
	w.r = &Selector{Dirs: []string{w.dir, w.other}, APIPods: true, Log: quietLog()}
	return w
}

// plantTraps adds what a fuzzer should never get through.
func (w *restoreWorld) plantTraps(t testing.TB) {
	writeArchive(t, filepath.Join(w.outside, "secret.tar"), "team-a")
	writeArchive(t, filepath.Join(w.dir, "b.tar"), "team-b")
	must(t, os.Symlink(filepath.Join(w.outside, "secret.tar"), filepath.Join(w.dir, "escape.tar")))
	must(t, os.Symlink(w.outside, filepath.Join(w.dir, "sub")))
	must(t, unix.Mkfifo(filepath.Join(w.dir, "fifo.tar"), 0o600))
}

func reasonOf(err error) string {
	var re *Error
	if errors.As(err, &re) {
		return re.Reason()
	}
	return ""
}

func TestRestoreStaysInItsNamespace(t *testing.T) {
	w := newRestoreWorld(t)
	for _, ref := range []string{"a.tar", filepath.Join(w.dir, "a.tar")} {
		pod, c := restorePod("team-a", ref, false)
		got, _, err := w.r.Source(pod, c)
		if err != nil || got != filepath.Join(w.dir, "a.tar") {
			t.Fatalf("%s in its own namespace: %q %v", ref, got, err)
		}
		pod, c = restorePod("team-b", ref, false)
		if got, _, err := w.r.Source(pod, c); err == nil || reasonOf(err) != "CheckpointNotFound" {
			t.Fatalf("%s from another namespace: %q %v, want CheckpointNotFound", ref, got, err)
		}
		// A static pod is held to the same rule.
		pod, c = restorePod("team-b", ref, true)
		if _, _, err := w.r.Source(pod, c); reasonOf(err) != "CheckpointNotFound" {
			t.Fatalf("%s from a static pod of another namespace: %v", ref, err)
		}
	}
	// The operator may widen it.
	wide := *w.r
	wide.AcrossNamespaces = true
	pod, c := restorePod("team-b", "a.tar", false)
	if got, _, err := wide.Source(pod, c); err != nil || got != filepath.Join(w.dir, "a.tar") {
		t.Fatalf("with --restore-across-namespaces: %q %v", got, err)
	}
	// An archive that records no namespace is nobody's.
	writeArchive(t, filepath.Join(w.dir, "none.tar"), "")
	pod, c = restorePod("default", "none.tar", false)
	if _, _, err := w.r.Source(pod, c); reasonOf(err) != "CheckpointNotFound" {
		t.Fatalf("archive without a namespace: %v", err)
	}
}

func TestRestoreOfAPIPodsNeedsTheGate(t *testing.T) {
	w := newRestoreWorld(t)
	w.r.APIPods = false
	pod, c := restorePod("team-a", "a.tar", false)
	_, _, err := w.r.Source(pod, c)
	if reasonOf(err) != "CheckpointNotAllowed" || !strings.Contains(err.Error(), "ContainerCheckpoint feature gate") {
		t.Fatalf("API pod with the gate off: %v", err)
	}
	// The image as the archive's path: refused the same way.
	pod, c = restorePod("team-a", "", false)
	delete(pod.Annotations, AnnotationPrefix+"app")
	c.Image = filepath.Join(w.dir, "a.tar")
	if _, _, err := w.r.Source(pod, c); reasonOf(err) != "CheckpointNotAllowed" {
		t.Fatalf("API pod with an archive as image, gate off: %v", err)
	}
	// Static pods are the operator's: they do not depend on the gate.
	pod, c = restorePod("team-a", "a.tar", true)
	if got, _, err := w.r.Source(pod, c); err != nil || got == "" {
		t.Fatalf("static pod with the gate off: %q %v", got, err)
	}
	// Gate on: the API pod restores.
	w.r.APIPods = true
	pod, c = restorePod("team-a", "a.tar", false)
	if got, _, err := w.r.Source(pod, c); err != nil || got == "" {
		t.Fatalf("API pod with the gate on: %q %v", got, err)
	}
}

// TestRestoreRefusalsLookAlike: a pod cannot tell a missing file from one
// outside the restore directories, one behind a link, or another
// namespace's archive: same reason, same message (but for the name it gave).
func TestRestoreRefusalsLookAlike(t *testing.T) {
	w := newRestoreWorld(t)
	writeArchive(t, filepath.Join(w.outside, "secret.tar"), "team-b")
	writeArchive(t, filepath.Join(w.dir, "b.tar"), "team-b")
	// Links inside an allowed directory: to a file outside, to a sibling, and a dangling one.
	must(t, os.Symlink(filepath.Join(w.outside, "secret.tar"), filepath.Join(w.dir, "escape.tar")))
	must(t, os.Symlink("../outside/secret.tar", filepath.Join(w.dir, "relative.tar")))
	must(t, os.Symlink("/nonexistent/x.tar", filepath.Join(w.dir, "dangling.tar")))
	// A directory link: the archive appears inside through it.
	must(t, os.Symlink(w.outside, filepath.Join(w.dir, "sub")))
	must(t, unix.Mkfifo(filepath.Join(w.dir, "fifo.tar"), 0o600))
	must(t, os.WriteFile(filepath.Join(w.dir, ".part-0123-a.tar"), testArchive(t, "team-b"), 0o600))

	refs := []string{
		"missing.tar",                                    // does not exist
		filepath.Join(w.outside, "secret.tar"),           // exists, outside
		filepath.Join(w.outside, "nothing.tar"),          // does not exist, outside
		"/etc/passwd",                                    // a host file
		"escape.tar", filepath.Join(w.dir, "escape.tar"), // link leaving the directory
		"relative.tar", "dangling.tar",
		filepath.Join(w.dir, "sub", "secret.tar"), // through a directory link
		filepath.Join(w.dir, "..", "outside", "secret.tar"),
		"fifo.tar",         // not a file (and must not block)
		".part-0123-a.tar", // a temporary
		"b.tar",            // another namespace's archive
	}
	want := ""
	for _, ref := range refs {
		pod, c := restorePod("team-a", ref, false)
		_, _, err := w.r.Source(pod, c)
		if reasonOf(err) != "CheckpointNotFound" {
			t.Fatalf("%s: %v (reason %q), want CheckpointNotFound", ref, err, reasonOf(err))
		}
		msg := strings.ReplaceAll(err.Error(), ref, "REF")
		if want == "" {
			want = msg
		}
		if msg != want {
			t.Fatalf("%s: message %q differs from %q", ref, msg, want)
		}
		if strings.Contains(err.Error(), w.outside) && !strings.Contains(ref, w.outside) {
			t.Fatalf("%s: message names the outside directory: %q", ref, err)
		}
	}
	// A regular file in an allowed directory that is no archive says so (the directory is the node's own).
	must(t, os.WriteFile(filepath.Join(w.other, "junk.tar"), []byte("no tar"), 0o600))
	pod, c := restorePod("team-a", "junk.tar", false)
	if _, _, err := w.r.Source(pod, c); reasonOf(err) != "InvalidCheckpoint" {
		t.Fatalf("junk: %v", err)
	}
}

// TestRestorePathIsTheCheckedFile: the runtime gets the real path of the
// file that was checked, in the directory's real location.
func TestRestorePathIsTheCheckedFile(t *testing.T) {
	w := newRestoreWorld(t)
	link := filepath.Join(t.TempDir(), "ckpt-link")
	must(t, os.Symlink(w.dir, link)) // an operator's directory may be a link
	r := &Selector{Dirs: []string{link}, APIPods: true, Log: quietLog()}
	for _, ref := range []string{"a.tar", filepath.Join(link, "a.tar"), filepath.Join(w.dir, "a.tar")} {
		pod, c := restorePod("team-a", ref, false)
		got, _, err := r.Source(pod, c)
		real, _ := filepath.EvalSymlinks(filepath.Join(w.dir, "a.tar"))
		if err != nil || got != real {
			t.Fatalf("%s: %q %v, want %s", ref, got, err, real)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
