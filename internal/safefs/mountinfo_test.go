package safefs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:                  "/plain",
		`/with\040space`:          "/with space",
		`/tab\011and\012newline`:  "/tab\tand\nnewline",
		`/back\134slash`:          `/back\slash`,
		`/short\04`:               `/short\04`,
		`/not\999octal`:           `/not\999octal`,
		`/end\`:                   `/end\`,
		`/two\040\040spaces\040x`: "/two  spaces x",
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// Stacked and nested mounts, one under a name with a space, all go, the
// deepest first; what they showed is left alone.
func TestUnmountAllAndIsMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts need root")
	}
	root := t.TempDir()
	pod, host := filepath.Join(root, "pod"), filepath.Join(root, "host")
	nested := filepath.Join(pod, "a b", "c")
	for _, d := range []string{nested, host} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(host, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = UnmountAll(pod) })
	d, err := Open(filepath.Join(pod, "a b"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if m, err := IsMountPoint(d); err != nil || m {
		t.Fatalf("a plain directory: mount point %v %v", m, err)
	}
	if err := MountTmpfs(d, "size=1m"); err != nil {
		t.Fatal(err)
	}
	// The tmpfs hides "c": make it again on the tmpfs, and bind the host there twice.
	if err := os.Mkdir(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := unix.Mount(host, nested, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
	}
	d2, err := Open(filepath.Join(pod, "a b"))
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if m, err := IsMountPoint(d2); err != nil || !m {
		t.Fatalf("a tmpfs root: mount point %v %v", m, err)
	}
	hd, err := Open(nested)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := IsMountPoint(hd); err != nil || !m {
		t.Fatalf("a bind of a directory on the same file system: mount point %v %v", m, err)
	}
	hd.Close()
	mps, err := MountsUnder(pod)
	if err != nil || len(mps) != 3 {
		t.Fatalf("mounts under the pod: %v %v", mps, err)
	}
	if real, _ := filepath.EvalSymlinks(nested); mps[0] != real {
		t.Fatalf("not deepest first: %v", mps)
	}
	if err := UnmountAll(pod); err != nil {
		t.Fatal(err)
	}
	if mps, err := MountsUnder(pod); err != nil || len(mps) != 0 {
		t.Fatalf("left: %v %v", mps, err)
	}
	if _, err := os.Stat(filepath.Join(host, "keep")); err != nil {
		t.Fatal(err)
	}
	if mps, err := MountsUnder(filepath.Join(root, "missing")); err != nil || mps != nil {
		t.Fatalf("a missing directory: %v %v", mps, err)
	}
}
