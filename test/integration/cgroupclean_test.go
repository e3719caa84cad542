package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

var cgroupRoots atomic.Uint64

// testCgroupRoot is a --cgroup-root of the test's own, removed with every
// cgroup beneath it once the test is over. Call it before newNode: cleanups
// run last registered first, so the node's pods and runtime are gone by
// then and the cgroups they left are empty.
func testCgroupRoot(t *testing.T) string {
	t.Helper()
	root := "/knode-it-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(cgroupRoots.Add(1), 10)
	t.Cleanup(func() {
		left := removeCgroupTree(root)
		deadline := time.Now().Add(30 * time.Second)
		for len(left) > 0 && time.Now().Before(deadline) {
			// A killed process leaves its cgroup once the kernel has reaped it.
			time.Sleep(200 * time.Millisecond)
			left = removeCgroupTree(root)
		}
		if len(left) > 0 {
			t.Errorf("cgroups left behind under %s: %v", root, left)
		}
	})
	return root
}

// removeCgroupTree removes root and every cgroup beneath it, deepest
// first, in every hierarchy mounted under /sys/fs/cgroup, and returns
// those that could not be removed.
func removeCgroupTree(root string) []string {
	var left []string
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	hierarchies = append(hierarchies, "/sys/fs/cgroup")
	for _, h := range hierarchies {
		top := filepath.Join(h, root)
		if fi, err := os.Stat(top); err != nil || !fi.IsDir() {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !os.IsNotExist(err) {
				left = append(left, dirs[i])
			}
		}
	}
	return left
}
