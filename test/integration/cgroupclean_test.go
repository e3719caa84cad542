package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
		if err := removeCgroupTree(root); err != nil {
			t.Errorf("cgroups left behind: %v", err)
		}
	})
	return root
}

// requireCgroupV1 skips a test that reads cgroup v1 files.
func requireCgroupV1(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.shares"); err != nil {
		t.Skip("cgroup v1 with the cpu controller at /sys/fs/cgroup/cpu is needed")
	}
}

// cgroupRoot is the node's own --cgroup-root: each test node keeps its
// pods' cgroups apart from every other node's (knode destroys the pod
// cgroups under its root that it does not know).
func (n *node) cgroupRoot() string { return "/knode-" + n.name }

// withCgroupRoot adds the node's own --cgroup-root to a run's arguments
// unless they name one.
func (n *node) withCgroupRoot(args []string) []string {
	if len(args) == 0 || args[0] != "run" || slices.Contains(args, "--cgroup-root") {
		return args
	}
	return append([]string{"run", "--cgroup-root", n.cgroupRoot()}, args[1:]...)
}

// removeCgroupTree removes root and every cgroup beneath it, deepest
// first, in every hierarchy mounted under /sys/fs/cgroup (the runtime
// makes the containers' in name=systemd and unified too), waiting a while
// for killed processes to leave them.
func removeCgroupTree(root string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := rmdirCgroupTree(root)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("under %s: %v", root, left)
		}
		// A killed process leaves its cgroup once the kernel has reaped it.
		time.Sleep(200 * time.Millisecond)
	}
}

func rmdirCgroupTree(root string) []string {
	var left []string
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range append(hierarchies, "/sys/fs/cgroup") {
		top := filepath.Join(h, root)
		if fi, err := os.Lstat(top); err != nil || !fi.IsDir() {
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
