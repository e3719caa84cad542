package pods

import (
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/safefs"
	"knode.io/knode/internal/subpath"
)

// bindSubPath resolves the subPath p inside the volume at volPath and
// returns the bind target the runtime mounts instead (see package subpath).
// Refusals name the subPath but not the host's paths, as the kubelet keeps
// the details of a failed subPath out of the pod's status.
func (d *podFiles) bindSubPath(pod *v1.Pod, vol *v1.Volume, volPath string, c *v1.Container, index int, p string) (string, error) {
	vm := &c.VolumeMounts[index]
	fail := func(why string, err error) error {
		d.log.Warn("subPath refused", "pod", podRef(pod, nil), "container", c.Name, "volumeMount", vm.Name, "subPath", p, "err", err)
		return fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q: subPath %q %s", vm.Name, c.Name, p, why)
	}
	var vd *safefs.Dir
	var err error
	if vol.HostPath != nil {
		// The hostPath itself may be a link (/var/run); beneath it, the
		// subPath is confined like any other.
		vd, err = safefs.OpenFollow(volPath)
	} else {
		vd, err = safefs.Open(volPath)
	}
	if err != nil {
		return "", fail("cannot be resolved: the volume cannot be opened", err)
	}
	defer vd.Close()
	f, err := subpath.Resolve(vd, p)
	switch {
	case err == nil:
	case errors.Is(err, subpath.ErrOutside):
		return "", fail("leaves the volume", err)
	case errors.Is(err, safefs.ErrSymlink):
		return "", fail("goes through a symbolic link that cannot be followed (a loop, or one planted while its directories were made)", err)
	case errors.Is(err, unix.ENOTDIR):
		return "", fail("goes through something that is not a directory", err)
	case errors.Is(err, os.ErrNotExist):
		return "", fail("does not exist and cannot be created", err)
	default:
		return "", fail("cannot be resolved", err)
	}
	defer f.Close()
	target, err := subpath.Bind(PodDir(d.RootDir, pod), vol.Name, c.Name, index, f)
	if err != nil {
		d.log.Error("subPath bind mount failed", "pod", podRef(pod, nil), "container", c.Name, "subPath", p, "err", err)
		return "", fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q", vm.Name, c.Name)
	}
	return target, nil
}

// emptyDirPath makes an emptyDir beneath the pod's directory, opened and
// chmodded through descriptors, with tmpfs for medium Memory mounted on the
// opened directory.
func (d *podFiles) emptyDirPath(pod *v1.Pod, vol *v1.Volume) (string, error) {
	podDir := PodDir(d.RootDir, pod)
	if err := os.MkdirAll(podDir, 0o750); err != nil {
		return "", fmt.Errorf("emptyDir %q: %w", vol.Name, err)
	}
	pd, err := safefs.Open(podDir)
	if err != nil {
		return "", fmt.Errorf("emptyDir %q: %w", vol.Name, err)
	}
	defer pd.Close()
	rel := path.Join("volumes", "kubernetes.io~empty-dir", vol.Name)
	dir, err := pd.MkdirAll(rel, 0o777)
	if err != nil {
		return "", fmt.Errorf("emptyDir %q: %w", vol.Name, err)
	}
	defer dir.Close()
	fresh := false
	if vol.EmptyDir.Medium == v1.StorageMediumMemory {
		mounted, err := safefs.IsMountPoint(dir)
		if err != nil {
			return "", fmt.Errorf("emptyDir %q (medium Memory): %w", vol.Name, err)
		}
		if err := mountTmpfs(dir, vol.EmptyDir.SizeLimit); err != nil {
			return "", fmt.Errorf("emptyDir %q (medium Memory): %w", vol.Name, err)
		}
		fresh = !mounted
	}
	// Set up once, as the kubelet's ready file marks it (a tmpfs mounted
	// again, after a reboot, is set up again): the container may have
	// written in it since, and its modes are its own then.
	ready := path.Join("plugins", "kubernetes.io~empty-dir", vol.Name, "ready")
	if _, err := pd.Lstat(ready); err == nil && !fresh {
		return path.Join(podDir, rel), nil
	}
	// World-writable like the kubelet's, so non-root containers can use it
	// (on tmpfs this is the mount's root, looked up again beneath the pod dir).
	if err := pd.Chmod(rel, 0o777); err != nil {
		return "", fmt.Errorf("emptyDir %q: %w", vol.Name, err)
	}
	if err := setFSGroup(pd, rel, pod, false); err != nil {
		return "", fmt.Errorf("emptyDir %q: %w", vol.Name, err)
	}
	if err := markReady(pd, ready); err != nil {
		return "", fmt.Errorf("emptyDir %q: %w", vol.Name, err)
	}
	return path.Join(podDir, rel), nil
}

// setFSGroup gives the volume rel beneath the pod directory pd the pod's
// fsGroup, as the kubelet's SetVolumeOwnership: for emptyDir, ConfigMap,
// Secret, projected and downwardAPI volumes the kubelet always walks the
// whole volume (their plugins pass no fsGroupChangePolicy). The volume may
// hold what a container wrote: the walk never follows a link nor crosses
// a mount (safefs).
func setFSGroup(pd *safefs.Dir, rel string, pod *v1.Pod, readOnly bool) error {
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.FSGroup == nil {
		return nil
	}
	vd, err := pd.OpenDir(rel, safefs.NoSymlinks)
	if err != nil {
		return err
	}
	defer vd.Close()
	if err := vd.SetGroupOwnership(int(*sc.FSGroup), readOnly); err != nil {
		return fmt.Errorf("set the volume's group to fsGroup %d: %w", *sc.FSGroup, err)
	}
	return nil
}

// markReady writes the kubelet's ready file of a volume set up.
func markReady(pd *safefs.Dir, ready string) error {
	md, err := pd.MkdirAll(path.Dir(ready), 0o750)
	if err != nil {
		return err
	}
	md.Close()
	return pd.WriteFile(ready, nil, 0o600)
}
