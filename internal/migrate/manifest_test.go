package migrate

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"knode.io/knode/internal/checkpoint/format"
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

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestWriteNewFileStaysBeneathItsDirectory: the manifest writer of
// `knode restore --to` and POST /restores neither follows a planted link
// nor replaces a file.
func TestWriteNewFileStaysBeneathItsDirectory(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	victim := filepath.Join(outside, "victim")
	must(t, os.WriteFile(victim, []byte("keep"), 0o600))
	// Links where the temporary and the target go.
	must(t, os.Symlink(victim, filepath.Join(dir, ".tmp-a.json")))
	if _, err := WriteNewFile(dir, "a.json", []byte("x")); err == nil {
		t.Fatal("wrote through a planted temporary link")
	}
	must(t, os.Symlink(victim, filepath.Join(dir, "b.json")))
	if _, err := WriteNewFile(dir, "b.json", []byte("x")); err == nil {
		t.Fatal("replaced a planted link")
	}
	if data, _ := os.ReadFile(victim); string(data) != "keep" {
		t.Fatalf("the file outside was changed: %q", data)
	}
	for _, bad := range []string{"../x.json", "sub/x.json", "..", ""} {
		if _, err := WriteNewFile(dir, bad, []byte("x")); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	got, err := WriteNewFile(dir, "c.json", []byte("x"))
	if err != nil || got != filepath.Join(dir, "c.json") {
		t.Fatalf("plain write: %q %v", got, err)
	}
	if _, err := WriteNewFile(dir, "c.json", []byte("y")); err == nil {
		t.Fatal("overwrote a file")
	}
}

func TestRestoreManifestChecksTheArchivesNames(t *testing.T) {
	d := &format.Details{ContainerName: "../../etc/x", Image: "busybox"}
	if _, err := RestoreManifest(d, "/a.tar", "p", "default"); err == nil {
		t.Fatal("a container name from the archive that is no DNS label was accepted")
	}
	d.ContainerName = "app"
	if _, err := RestoreManifest(d, "/a.tar", "p", "default"); err != nil {
		t.Fatal(err)
	}
}
