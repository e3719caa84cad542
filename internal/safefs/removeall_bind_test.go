package safefs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A bind mount of a directory of the same file system (a hostPath subPath
// bind, or a mount a Bidirectional container left in an emptyDir) has the
// same device number as the tree around it. If it is still mounted when
// the tree is removed (its unmount failed or was missed), RemoveAll must
// refuse it all the same, not empty the host's directory it shows.
func TestRemoveAllStopsAtABindOfTheSameFileSystem(t *testing.T) {
	d, volPath, host, mnt := treeWithBoundHost(t)
	var a, b unix.Stat_t
	if err := unix.Stat(mnt, &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(volPath, &b); err != nil {
		t.Fatal(err)
	}
	if a.Dev != b.Dev {
		t.Skip("the bind is not on the tree's device")
	}
	if err := d.RemoveAll("sub"); err == nil {
		t.Error("RemoveAll crossed into a bind mount")
	}
	if data, err := os.ReadFile(filepath.Join(host, "secret")); err != nil || string(data) != "host" {
		t.Fatalf("a host file shown by the bind was removed: %q %v", data, err)
	}
}

// treeWithBoundHost is tree with the host directory bind-mounted at
// sub/bound inside the volume: a mount of the same file system below it.
func treeWithBoundHost(t *testing.T) (d *Dir, volPath, host, mnt string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	d, volPath, host = tree(t)
	mnt = filepath.Join(volPath, "sub", "bound")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(host, mnt, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount here: %v", err)
	}
	t.Cleanup(func() { unmountForTest(mnt) })
	return d, volPath, host, mnt
}
