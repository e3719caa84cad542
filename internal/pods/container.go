package pods

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/apivolume"
	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/safefs"
	"knode.io/knode/internal/subpath"
)

// containerConfig builds a container instance's CRI config: the env and
// the volumes' host paths are prepared here (emptyDirs made, subPaths
// bound, API-object volumes written), the config is crispec's, and the
// device plugins' answers are merged in last.
func (d *workerDeps) containerConfig(state *podFileState, pod *v1.Pod, c *v1.Container, imageRef string, restartCount int, isInit bool, podIP string) (*runtimeapi.ContainerConfig, error) {
	// The image's user, as the kubelet reads it before anything else: a
	// container that must not run as root and whose image would is refused
	// before its volumes are prepared. It is read from the image ID the
	// container will be created from (imageRef), not from the spec's name.
	user, err := d.imageUser(imageRef)
	if err != nil {
		return nil, err
	}
	if err := crispec.CheckContainerSecurity(pod, c, user); err != nil {
		return nil, err
	}
	src, err := d.env.envSources(pod, c)
	if err != nil {
		return nil, err
	}
	if src.Services, err = d.env.serviceEnv(pod); err != nil {
		return nil, err
	}
	envs, err := crispec.Env(pod, c, podIP, d.node, src)
	if err != nil {
		return nil, err
	}
	mounts, err := d.files.containerMounts(state, pod, c, envs)
	if err != nil {
		return nil, err
	}
	if crispec.MountsEtcHosts(pod, c, podIP) {
		hostsPath, err := d.files.writeEtcHosts(&state.hosts, pod, podIP)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, crispec.EtcHostsMount(hostsPath))
	}
	cfg := crispec.Container(pod, c, crispec.ContainerInput{RestartCount: restartCount, IsInit: isInit, Envs: envs, Mounts: mounts, ImageRef: imageRef, ImageUser: user}, d.node)
	d.Devices.Apply(pod, c, cfg)
	return cfg, nil
}

// imageUser asks the runtime which user the image ref (an image ID) runs
// as (ImageStatus), as the kubelet's getImageUser; an image the runtime
// does not know runs as root.
func (d *workerDeps) imageUser(ref string) (crispec.ImageUser, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.RequestTimeout)
	defer cancel()
	resp, err := d.Images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil {
		return crispec.ImageUser{}, fmt.Errorf("failed to inspect image %q: %w", ref, err)
	}
	return crispec.ImageUserOf(resp.GetImage()), nil
}

// containerMounts turns volume mounts into CRI mounts, creating emptyDir and
// DirectoryOrCreate/FileOrCreate host paths as the kubelet's volume plugins
// do. A subPath is resolved inside its volume and bind-mounted through a
// descriptor (bindSubPath); API-object volumes are always read-only.
func (d *podFiles) containerMounts(state *podFileState, pod *v1.Pod, c *v1.Container, envs []*runtimeapi.KeyValue) (mounts []*runtimeapi.Mount, err error) {
	volumes := map[string]*v1.Volume{}
	for i := range pod.Spec.Volumes {
		volumes[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	podDir := PodDir(d.RootDir, pod)
	// An earlier instance's subPath binds are replaced, not stacked; and a
	// container that cannot be created keeps none.
	if err := subpath.CleanContainer(podDir, c.Name); err != nil {
		return nil, fmt.Errorf("remove the subPath mounts of container %q's earlier instance: %w", c.Name, err)
	}
	defer func() {
		if err != nil {
			if cerr := subpath.CleanContainer(podDir, c.Name); cerr != nil {
				d.log.Warn("remove subPath mounts", "pod", podRef(pod, nil), "container", c.Name, "err", cerr)
			}
		}
	}()
	for i := range c.VolumeMounts {
		vm := &c.VolumeMounts[i]
		vol := volumes[vm.Name]
		if vol == nil {
			return nil, fmt.Errorf("volume %q not found", vm.Name)
		}
		sub, err := crispec.SubPath(vm, envs)
		if err != nil {
			return nil, err
		}
		hostPath, err := d.volumeHostPath(state.volumes, pod, vol)
		if err != nil {
			return nil, err
		}
		if sub != "" {
			if hostPath, err = d.bindSubPath(pod, vol, hostPath, c, i, sub); err != nil {
				return nil, err
			}
		}
		mount, err := crispec.Mount(vm, vol, hostPath)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, mount)
	}
	term, err := d.terminationMount(pod, c)
	if err != nil {
		return nil, err
	}
	if term != nil {
		mounts = append(mounts, term)
	}
	return mounts, nil
}

// PodDir is where knode keeps a pod's volumes: <root-dir>/pods/<uid>.
func PodDir(rootDir string, pod *v1.Pod) string {
	return filepath.Join(rootDir, "pods", string(pod.UID))
}

func (d *podFiles) volumeHostPath(vols *apivolume.PodState, pod *v1.Pod, vol *v1.Volume) (string, error) {
	switch {
	case vol.EmptyDir != nil:
		return d.emptyDirPath(pod, vol)
	case vol.HostPath != nil:
		return vol.HostPath.Path, checkHostPath(vol)
	case vol.ConfigMap != nil, vol.Secret != nil, vol.Projected != nil, vol.DownwardAPI != nil:
		return d.apiVolume(vols, pod, vol)
	default:
		return "", fmt.Errorf("volume %q: unsupported volume type", vol.Name)
	}
}

// checkHostPath applies a hostPath volume's type as the kubelet does, with
// its messages. The path is opened once and the check is made on that
// descriptor (fstat), so what is checked is one object, not whatever each
// of several stat calls finds. The Create variants follow links only in
// the part of the path that exists; what they create is made with
// mkdirat/openat beneath an opened parent and never followed through a
// link, so a link planted in a directory knode has just made cannot send
// the rest elsewhere. Like the kubelet, the runtime then gets the path.
func checkHostPath(vol *v1.Volume) error {
	p := vol.HostPath.Path
	t := v1.HostPathUnset
	if vol.HostPath.Type != nil {
		t = *vol.HostPath.Type
	}
	if !filepath.IsAbs(p) {
		return fmt.Errorf("hostPath volume %q: path %q must be absolute", vol.Name, p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("hostPath volume %q: path %q must not contain '..'", vol.Name, p)
		}
	}
	if t == v1.HostPathUnset {
		return nil
	}
	var st unix.Stat_t
	statErr := statPath(p, &st)
	if statErr != nil && !errors.Is(statErr, unix.ENOENT) {
		return fmt.Errorf("hostPath volume %q: %w", vol.Name, &os.PathError{Op: "open", Path: p, Err: statErr})
	}
	exists := statErr == nil
	format := st.Mode & unix.S_IFMT
	fail := func(what string) error {
		return fmt.Errorf("hostPath type check failed: %s is not %s", p, what)
	}
	switch t {
	case v1.HostPathDirectoryOrCreate:
		if !exists {
			return makeHostDir(p)
		}
		if format != unix.S_IFDIR {
			return fail("a directory")
		}
	case v1.HostPathDirectory:
		if !exists || format != unix.S_IFDIR {
			return fail("a directory")
		}
	case v1.HostPathFileOrCreate:
		if !exists {
			return makeHostFile(p)
		}
		if format != unix.S_IFREG {
			return fail("a file")
		}
	case v1.HostPathFile:
		if !exists || format != unix.S_IFREG {
			return fail("a file")
		}
	case v1.HostPathSocket:
		if !exists || format != unix.S_IFSOCK {
			return fail("a socket file")
		}
	case v1.HostPathCharDev:
		if !exists || format != unix.S_IFCHR {
			return fail("a character device")
		}
	case v1.HostPathBlockDev:
		if !exists || format != unix.S_IFBLK {
			return fail("a block device")
		}
	default:
		return fmt.Errorf("%s is an invalid volume type", t)
	}
	return nil
}

// statPath opens p (following links, as a hostPath is meant) with O_PATH,
// which neither blocks on a FIFO nor needs read access, and describes the
// object it reached.
func statPath(p string, st *unix.Stat_t) error {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fstat(fd, st)
}

// openHostParents opens the deepest existing directory on the way to p
// (following the links that are there) and returns it with the components
// still missing below it.
func openHostParents(p string) (fd int, missing []string, err error) {
	parts := strings.Split(strings.Trim(filepath.Clean(p), "/"), "/")
	fd, err = unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, nil, err
	}
	for i, part := range parts {
		if part == "" {
			continue
		}
		next, err := unix.Openat(fd, part, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			return fd, parts[i:], nil
		}
		unix.Close(fd)
		if err != nil {
			return -1, nil, &os.PathError{Op: "open", Path: "/" + strings.Join(parts[:i+1], "/"), Err: err}
		}
		fd = next
	}
	return fd, nil, nil
}

// makeHostDir is DirectoryOrCreate's mkdir -p with mode 0755: each missing
// level is made with mkdirat and entered with O_NOFOLLOW.
func makeHostDir(p string) error {
	fd, missing, err := openHostParents(p)
	if err != nil {
		return fmt.Errorf("create hostPath directory %s: %w", p, err)
	}
	defer func() { unix.Close(fd) }()
	for _, part := range missing {
		if err := unix.Mkdirat(fd, part, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create hostPath directory %s: %w", p, err)
		}
		next, err := unix.Openat(fd, part, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("create hostPath directory %s: %s changed while it was made: %w", p, part, err)
		}
		unix.Close(fd)
		fd = next
	}
	return nil
}

// makeHostFile is FileOrCreate's: an empty file, mode 0644, in a directory
// that must exist (the kubelet does not create the parents either). A
// dangling link at p is refused rather than followed to create its target.
func makeHostFile(p string) error {
	dir, base := filepath.Split(filepath.Clean(p))
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("create hostPath file %s: %w", p, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("create hostPath file %s: %w", p, err)
	}
	return unix.Close(fd)
}

// mountTmpfs backs a memory emptyDir with tmpfs (once), sized by its
// limit, mounting on the opened directory d.
func mountTmpfs(d *safefs.Dir, limit *resource.Quantity) error {
	mounted, err := safefs.IsMountPoint(d)
	if err != nil {
		return err
	}
	if mounted {
		return nil
	}
	opts := "mode=0777"
	if limit != nil && !limit.IsZero() {
		opts += ",size=" + strconv.FormatInt(limit.Value(), 10)
	}
	return safefs.MountTmpfs(d, opts)
}

// unmountVolumes detaches every mount under a pod's directory (tmpfs
// emptyDirs and secrets, subPath binds), deepest first, before the
// directory is removed: a removal that went into a bind would empty
// whatever the bind shows.
func unmountVolumes(podDir string) error {
	return safefs.UnmountAll(podDir)
}
