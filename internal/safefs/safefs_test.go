package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// tree makes root/vol (the confined directory) beside root/host (what a
// container must never reach) holding one secret file.
func tree(t *testing.T) (vol *Dir, volPath, host string) {
	t.Helper()
	root := t.TempDir()
	volPath, host = filepath.Join(root, "vol"), filepath.Join(root, "host")
	for _, d := range []string{volPath, host, filepath.Join(volPath, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(host, "secret"), []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Links a container could plant inside its volume.
	links := map[string]string{
		"abs":        host,             // absolute, out
		"up":         "../host",        // relative, out
		"sub/deepup": "../../host",     // relative from below, out
		"in":         "sub",            // stays inside
		"sub/back":   "../sub",         // stays inside
		"loop":       "loop",           // a loop
		"file-out":   host + "/secret", // a file outside
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(volPath, name)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Open(volPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, volPath, host
}

func hostIntact(t *testing.T, host string) {
	t.Helper()
	entries, err := os.ReadDir(host)
	if err != nil || len(entries) != 1 || entries[0].Name() != "secret" {
		t.Fatalf("the directory outside was changed: %v %v", entries, err)
	}
	if data, err := os.ReadFile(filepath.Join(host, "secret")); err != nil || string(data) != "host" {
		t.Fatalf("the file outside was changed: %q %v", data, err)
	}
}

func TestOpenRefusesEveryWayOut(t *testing.T) {
	d, _, host := tree(t)
	for _, rel := range []string{"abs", "up", "sub/deepup", "abs/secret", "up/secret", "file-out", "..", "../host", "/etc", "sub/../../host"} {
		for _, follow := range []Follow{NoSymlinks, InsideLinks} {
			f, err := d.OpenPath(rel, follow)
			if err == nil {
				f.Close()
				t.Errorf("OpenPath(%q, %v) succeeded; want a refusal", rel, follow)
				continue
			}
			if !errors.Is(err, ErrOutside) && !errors.Is(err, ErrSymlink) {
				t.Errorf("OpenPath(%q, %v) = %v; want ErrOutside or ErrSymlink", rel, follow, err)
			}
		}
	}
	if f, err := d.OpenPath("loop", InsideLinks); err == nil {
		f.Close()
		t.Error("a link loop resolved")
	}
	hostIntact(t, host)
}

func TestInsideLinksAreFollowedOnlyWhenAsked(t *testing.T) {
	d, _, _ := tree(t)
	for _, rel := range []string{"in", "sub/back", "in/back"} {
		f, err := d.OpenPath(rel, InsideLinks)
		if err != nil {
			t.Errorf("OpenPath(%q, InsideLinks): %v", rel, err)
			continue
		}
		f.Close()
		if f, err := d.OpenPath(rel, NoSymlinks); err == nil || !errors.Is(err, ErrSymlink) {
			if f != nil {
				f.Close()
			}
			t.Errorf("OpenPath(%q, NoSymlinks) = %v; want ErrSymlink", rel, err)
		}
	}
}

func TestMkdirAllNeverLeaves(t *testing.T) {
	d, volPath, host := tree(t)
	for _, rel := range []string{"abs/x", "up/x/y", "sub/deepup/x", "in/x", "../x", "/x"} {
		if sub, err := d.MkdirAll(rel, 0o755); err == nil {
			sub.Close()
			t.Errorf("MkdirAll(%q) succeeded through a link or out of the directory", rel)
		}
	}
	sub, err := d.MkdirAll("a/b/c", 0o750)
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	if fi, err := os.Stat(filepath.Join(volPath, "a/b/c")); err != nil || !fi.IsDir() {
		t.Fatalf("a/b/c not made: %v", err)
	}
	hostIntact(t, host)
}

func TestWriteFileReplacesAPlantedLink(t *testing.T) {
	d, volPath, host := tree(t)
	if err := d.WriteFile("file-out", []byte("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(volPath, "file-out"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
		t.Fatalf("file-out is %v (%v); want a regular 0640 file", fi.Mode(), err)
	}
	if err := d.WriteFile("up/secret", []byte("x"), 0o644); err == nil {
		t.Error("WriteFile through a link succeeded")
	}
	hostIntact(t, host)
}

func TestRemoveAllRemovesLinksNotTargets(t *testing.T) {
	d, volPath, host := tree(t)
	if err := os.Symlink(host, filepath.Join(volPath, "sub", "abs2")); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"abs", "up", "file-out", "sub"} {
		if err := d.RemoveAll(rel); err != nil {
			t.Fatalf("RemoveAll(%q): %v", rel, err)
		}
		if _, err := os.Lstat(filepath.Join(volPath, rel)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", rel, err)
		}
	}
	if err := d.RemoveAll("in/x"); err == nil {
		// "in" pointed to the removed "sub": nothing there, nothing to do.
		t.Log("in/x: nothing removed")
	}
	if err := d.RemoveAll("../host"); err == nil {
		t.Error("RemoveAll(../host) accepted")
	}
	hostIntact(t, host)
}

func TestRemoveAllStopsAtAMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	d, volPath, _ := tree(t)
	mnt := filepath.Join(volPath, "sub", "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mountTmpfsForTest(mnt); err != nil {
		t.Skipf("cannot mount tmpfs here: %v", err)
	}
	t.Cleanup(func() { unmountForTest(mnt) })
	if err := os.WriteFile(filepath.Join(mnt, "keep"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveAll("sub"); err == nil {
		t.Fatal("RemoveAll crossed into a mount point")
	}
	if _, err := os.Stat(filepath.Join(mnt, "keep")); err != nil {
		t.Fatalf("a file on the mount was removed: %v", err)
	}
}

func TestLstatReadlinkRenameChmod(t *testing.T) {
	d, volPath, host := tree(t)
	fi, err := d.Lstat("abs")
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("Lstat(abs) = %v, %v; want a link", fi, err)
	}
	if target, err := d.Readlink("up"); err != nil || target != "../host" {
		t.Fatalf("Readlink(up) = %q, %v", target, err)
	}
	if err := d.Chmod("abs", 0o777); err == nil {
		t.Error("Chmod through a link accepted")
	}
	if err := d.Symlink("sub", "tmp-link"); err != nil {
		t.Fatal(err)
	}
	if err := d.Rename("tmp-link", "up"); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(volPath, "up")); err != nil || target != "sub" {
		t.Fatalf("rename did not replace the link: %q %v", target, err)
	}
	if err := d.Chmod("sub", 0o700); err != nil {
		t.Fatal(err)
	}
	hostIntact(t, host)
}

func TestClean(t *testing.T) {
	for rel, ok := range map[string]bool{"a": true, "a/b": true, "a/./b": true, "a/": true, "": false, "/a": false, "..": false, "a/../b": false, "a/..": false, "..a": true, "a..": true} {
		if _, err := Clean(rel); (err == nil) != ok {
			t.Errorf("Clean(%q) error = %v; want ok=%v", rel, err, ok)
		}
	}
}
