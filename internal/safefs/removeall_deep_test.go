package safefs

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// nest makes depth directories d/d/d/... under dir/name, relative to
// descriptors (the path is longer than PATH_MAX), with a file at the bottom.
func nest(t *testing.T, dir, name string, depth int) {
	t.Helper()
	cur, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	next := name
	for i := 0; i < depth; i++ {
		if err := unix.Mkdirat(cur, next, 0o755); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Openat(cur, next, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil {
			t.Fatal(err)
		}
		cur, next = fd, "d"
	}
	fd, err := unix.Openat(cur, "bottom", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	unix.Close(cur)
}

// A container can nest directories far deeper than knode can hold
// descriptors: RemoveAll must still remove the tree, with the descriptors
// it has. The soft limit is lowered for the test so the depth needed is
// small; the old walk, one open directory per level, failed with EMFILE.
func TestRemoveAllDeeperThanTheDescriptorLimit(t *testing.T) {
	root := t.TempDir()
	const depth = 3000
	nest(t, root, "tree", depth)
	// A sibling of ordinary shape and many entries in one directory.
	wide := filepath.Join(root, "tree", "wide")
	if err := os.Mkdir(wide, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 2055 {
		if err := os.WriteFile(filepath.Join(wide, "f"+strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(root, "outside")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = 512
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	err = d.RemoveAll("tree")
	if rerr := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("RemoveAll of a %d-level tree with %d descriptors: %v", depth, low.Cur, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "tree")); !os.IsNotExist(err) {
		t.Fatalf("the tree is still there: %v", err)
	}
	if data, err := os.ReadFile(outside); err != nil || string(data) != "keep" {
		t.Fatalf("a file beside the tree was touched: %q %v", data, err)
	}
}
