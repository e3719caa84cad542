package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// DiskUsage counts what is in the tree, not what its links point to, and
// refuses to measure a tree buried deeper than it walks.
func TestDiskUsage(t *testing.T) {
	d, volPath, host := tree(t)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i) // not sparse
	}
	if err := os.WriteFile(filepath.Join(host, "huge"), append(big, big...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(volPath, "sub", "data"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(volPath, "tohost")); err != nil {
		t.Fatal(err)
	}
	n, err := d.DiskUsage(0)
	if err != nil {
		t.Fatal(err)
	}
	if n < 1<<20 || n >= 2<<20 {
		t.Fatalf("usage %d: want the 1 MiB file and little more (links not followed)", n)
	}
	if n, err := d.DiskUsage(4096); err != nil || n <= 4096 {
		t.Fatalf("DiskUsage(stop 4096) = %d, %v: want more than 4096", n, err)
	}

	nest(t, volPath, "deep", maxUsageDepth+1)
	if _, err := d.DiskUsage(0); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("a tree deeper than %d levels: %v, want ErrTooDeep", maxUsageDepth, err)
	}
}
