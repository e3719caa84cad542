package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestOrphanedPodCgroupsRemovedAtStart: a pod cgroup left under kubepods
// by a pod knode no longer knows (deleted while it was down), with a
// process still in it, is destroyed once the sources have been seen, as
// the kubelet's cleanupOrphanedPodCgroups does: the process is killed and
// the cgroup removed. The cgroup of a pod knode runs stays, and so does
// what is not a pod's cgroup or lies outside kubepods.
func TestOrphanedPodCgroupsRemovedAtStart(t *testing.T) {
	requireCgroupV1(t)
	t.Parallel()
	root := testCgroupRoot(t)
	n := newNode(t)
	const orphanUID = "5e1f0e7a-0000-4000-8000-00000000dead"
	orphan := root + "/kubepods/burstable/pod" + orphanUID
	planted := []string{orphan + "/ctr", root + "/kubepods/burstable/not-a-pod", root + "/elsewhere/pod" + orphanUID}
	for _, h := range []string{"cpu", "memory"} {
		for _, p := range planted {
			if err := os.MkdirAll(filepath.Join("/sys/fs/cgroup", h, p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	leftover := exec.Command("sleep", "3600")
	if err := leftover.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- leftover.Wait() }()
	t.Cleanup(func() { _ = leftover.Process.Kill() })
	if err := os.WriteFile(filepath.Join("/sys/fs/cgroup/cpu", orphan, "ctr", "cgroup.procs"), []byte(strconv.Itoa(leftover.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}

	n.writeManifest("web.yaml", podManifest("web", "default", "Always", `exec sleep 3600`))
	n.startKnode("--cgroup-root", root)
	before := n.waitRunning("default", "web", "main")
	var err error
	n.eventually(time.Minute, "the orphan's process killed", func() bool {
		select {
		case err = <-exited:
			return true
		default:
			return false
		}
	})
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("the process left in the orphan's cgroup ended with %v, want SIGKILL", err)
	}
	n.eventually(time.Minute, "the orphan's cgroup removed", func() bool {
		for _, h := range []string{"cpu", "memory"} {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", h, orphan)); !os.IsNotExist(err) {
				return false
			}
		}
		return true
	})
	for _, h := range []string{"cpu", "memory"} {
		for _, p := range planted[1:] {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", h, p)); err != nil {
				t.Errorf("%s %s was touched: %v", h, p, err)
			}
		}
	}
	web := n.apiPod(n.podName("web"))
	if web == nil {
		t.Fatal("the static pod is not served")
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/cpu", root, "kubepods/besteffort/pod"+string(web.UID))); err != nil {
		t.Errorf("the running pod's cgroup went: %v", err)
	}
	if c := n.running("default", "web", "main"); c == nil || c.Id != before.Id {
		t.Errorf("the running pod's container did not survive the sweep: %v", c)
	}
}
