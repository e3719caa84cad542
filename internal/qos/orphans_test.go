package qos

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"knode.io/knode/internal/cgroups"
)

// Beneath a tmp tree laid out as cgroupfs: the cgroups of pods not kept
// go, container cgroups under them too, in every hierarchy; a kept pod's,
// anything not named pod<uid>, and anything outside kubepods stay.
func TestRemoveOrphansChoosesOnlyUnknownPodCgroups(t *testing.T) {
	dir := t.TempDir()
	fs := cgroups.NewV1(map[string]string{"cpu": filepath.Join(dir, "cpu"), "memory": filepath.Join(dir, "memory")}, nil)
	c := NewCgroups(fs, "/root")
	mk := func(h, p string) {
		if err := os.MkdirAll(filepath.Join(dir, h, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []string{"cpu", "memory"} {
		mk(h, "root/kubepods/podkept")
		mk(h, "root/kubepods/pod0b6c9b0e-1a2b-4c3d-8e9f-0123456789ab/ctr1")
		mk(h, "root/kubepods/burstable/podstale-b")
		mk(h, "root/kubepods/besteffort/not-a-pod")
		mk(h, "root/other/podoutside")
		mk(h, "podtop")
	}
	// Left in one hierarchy alone: found too.
	mk("memory", "root/kubepods/besteffort/podstale-e")
	// Any UID a pod may have (podpath's form: upper case, dots, up to 128
	// characters), not only the API server's lower-case ones.
	mk("cpu", "root/kubepods/burstable/podStatic_Pod.UID")
	removed, err := c.RemoveOrphans(map[types.UID]bool{"kept": true})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if want := []types.UID{"0b6c9b0e-1a2b-4c3d-8e9f-0123456789ab", "Static_Pod.UID", "stale-b", "stale-e"}; !slices.Equal(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	for _, h := range []string{"cpu", "memory"} {
		for p, stays := range map[string]bool{
			"root/kubepods/podkept":                                 true,
			"root/kubepods/pod0b6c9b0e-1a2b-4c3d-8e9f-0123456789ab": false,
			"root/kubepods/burstable/podstale-b":                    false,
			"root/kubepods/besteffort/podstale-e":                   false,
			"root/kubepods/besteffort/not-a-pod":                    true,
			"root/kubepods/burstable":                               true,
			"root/other/podoutside":                                 true,
			"podtop":                                                true,
		} {
			_, err := os.Stat(filepath.Join(dir, h, p))
			if stays && err != nil || !stays && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s/%s: stays %v, stat %v", h, p, stays, err)
			}
		}
	}
}

// In the real cgroupfs: a process left in an orphaned pod's container
// cgroup is killed, as the kubelet's pod container manager kills it, and
// the pod cgroup is then removed.
func TestRemoveOrphansKillsWhatRunsThere(t *testing.T) {
	fs, err := cgroups.New()
	if err != nil || os.Geteuid() != 0 {
		t.Skipf("needs root and a cgroup filesystem: %v", err)
	}
	root := "/knode-unit-" + strconv.Itoa(os.Getpid())
	pod := ClassCgroup(root, v1.PodQOSBestEffort) + "/podorphan-1"
	t.Cleanup(func() { _ = fs.Remove(root) })
	if err := fs.Set(pod+"/ctr", cgroups.Resources{}); err != nil {
		t.Skipf("cannot make cgroups here: %v", err)
	}
	cmd := exec.Command("sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	procs := "/sys/fs/cgroup/cgroup.procs"
	if !fs.V2() {
		procs = "/sys/fs/cgroup/cpu/cgroup.procs"
	}
	procs = filepath.Join(filepath.Dir(procs), pod, "ctr", "cgroup.procs")
	if err := os.WriteFile(procs, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatalf("move the process into the orphan's cgroup: %v", err)
	}
	removed, err := NewCgroups(fs, root).RemoveOrphans(nil)
	if err != nil || len(removed) != 1 || removed[0] != "orphan-1" {
		t.Fatalf("removed %v: %v", removed, err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the process in the orphan's cgroup was not killed: %v", err)
	}
	if fs.Exists(pod) {
		t.Fatal("the orphan's cgroup is still there")
	}
	if !fs.Exists(ClassCgroup(root, v1.PodQOSBestEffort)) {
		t.Fatal("the QoS cgroup went with it")
	}
}
