package pods

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerConfig builds the CRI container config the way the kubelet does.
func (m *Manager) containerConfig(pod *v1.Pod, c *v1.Container, restartCount int, isInit bool, podIP string) (*runtimeapi.ContainerConfig, error) {
	envs, err := m.containerEnv(pod, c, podIP)
	if err != nil {
		return nil, err
	}
	mounts, err := m.containerMounts(pod, c)
	if err != nil {
		return nil, err
	}
	lookup := envLookup(envs)
	command := expandAll(c.Command, lookup)
	args := expandAll(c.Args, lookup)
	annotations := map[string]string{
		annotationContainerHash:          containerHash(c),
		annotationRestartCount:           strconv.Itoa(restartCount),
		annotationTerminationMessagePath: c.TerminationMessagePath,
		annotationTerminationMsgPolicy:   string(c.TerminationMessagePolicy),
		annotationPodTerminationGrace:    strconv.FormatInt(gracePeriod(pod), 10),
	}
	if len(c.Ports) > 0 {
		if b, err := json.Marshal(c.Ports); err == nil {
			annotations[annotationContainerPorts] = string(b)
		}
	}
	if isInit {
		annotations[annotationInit] = "true"
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: uint32(restartCount)},
		Image:      &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image},
		Command:    command,
		Args:       args,
		WorkingDir: c.WorkingDir,
		Envs:       envs,
		Mounts:     mounts,
		Labels: map[string]string{
			labelContainerName: c.Name,
			labelPodName:       pod.Name,
			labelPodNamespace:  pod.Namespace,
			labelPodUID:        string(pod.UID),
			labelManagedBy:     managedByValue,
			labelNode:          m.opts.NodeName,
		},
		Annotations: annotations,
		LogPath:     filepath.Join(c.Name, strconv.Itoa(restartCount)+".log"),
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       linuxResources(c),
			SecurityContext: containerSecurityContext(pod, c),
		},
	}
	m.opts.Devices.Apply(pod, c, cfg)
	return cfg, nil
}

func gracePeriod(pod *v1.Pod) int64 {
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return v1.DefaultTerminationGracePeriodSeconds
}

// containerHash identifies a container's spec, as the kubelet's annotation does.
func containerHash(c *v1.Container) string {
	b, _ := json.Marshal(c)
	h := fnv.New32a()
	h.Write(b)
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}

func linuxResources(c *v1.Container) *runtimeapi.LinuxContainerResources {
	res := &runtimeapi.LinuxContainerResources{}
	if q, ok := c.Resources.Requests[v1.ResourceCPU]; ok {
		res.CpuShares = max(q.MilliValue()*1024/1000, 2)
	} else if q, ok := c.Resources.Limits[v1.ResourceCPU]; ok {
		res.CpuShares = max(q.MilliValue()*1024/1000, 2)
	} else {
		res.CpuShares = 2
	}
	if q, ok := c.Resources.Limits[v1.ResourceCPU]; ok {
		const period = 100000
		res.CpuPeriod = period
		res.CpuQuota = max(q.MilliValue()*period/1000, 1000)
	}
	if q, ok := c.Resources.Limits[v1.ResourceMemory]; ok {
		res.MemoryLimitInBytes = q.Value()
	}
	return res
}

func containerSecurityContext(pod *v1.Pod, c *v1.Container) *runtimeapi.LinuxContainerSecurityContext {
	sc := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: namespaceOptions(pod)}
	if psc := pod.Spec.SecurityContext; psc != nil {
		sc.RunAsUser = int64Value(psc.RunAsUser)
		sc.RunAsGroup = int64Value(psc.RunAsGroup)
		sc.SupplementalGroups = psc.SupplementalGroups
		if psc.RunAsNonRoot != nil && *psc.RunAsNonRoot && psc.RunAsUser == nil {
			sc.RunAsUsername = ""
		}
	}
	csc := c.SecurityContext
	if csc == nil {
		return sc
	}
	if csc.Privileged != nil {
		sc.Privileged = *csc.Privileged
	}
	if csc.RunAsUser != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *csc.RunAsUser}
	}
	if csc.RunAsGroup != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *csc.RunAsGroup}
	}
	if csc.ReadOnlyRootFilesystem != nil {
		sc.ReadonlyRootfs = *csc.ReadOnlyRootFilesystem
	}
	if csc.AllowPrivilegeEscalation != nil {
		sc.NoNewPrivs = !*csc.AllowPrivilegeEscalation
	}
	if caps := csc.Capabilities; caps != nil {
		sc.Capabilities = &runtimeapi.Capability{}
		for _, c := range caps.Add {
			sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(c))
		}
		for _, c := range caps.Drop {
			sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(c))
		}
	}
	return sc
}

// containerMounts turns volume mounts into CRI mounts, creating emptyDir and
// DirectoryOrCreate/FileOrCreate host paths as the kubelet's volume plugins do.
func (m *Manager) containerMounts(pod *v1.Pod, c *v1.Container) ([]*runtimeapi.Mount, error) {
	volumes := map[string]*v1.Volume{}
	for i := range pod.Spec.Volumes {
		volumes[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	var mounts []*runtimeapi.Mount
	for _, vm := range c.VolumeMounts {
		vol := volumes[vm.Name]
		if vol == nil {
			return nil, fmt.Errorf("volume %q not found", vm.Name)
		}
		hostPath, err := m.volumeHostPath(pod, vol)
		if err != nil {
			return nil, err
		}
		if vm.SubPath != "" {
			if filepath.IsAbs(vm.SubPath) || strings.Contains(filepath.Clean(vm.SubPath), "..") {
				return nil, fmt.Errorf("volume mount %q: subPath %q must be a relative path inside the volume", vm.Name, vm.SubPath)
			}
			hostPath = filepath.Join(hostPath, vm.SubPath)
			if err := os.MkdirAll(hostPath, 0o755); err != nil {
				return nil, fmt.Errorf("volume mount %q: create subPath: %w", vm.Name, err)
			}
		}
		mount := &runtimeapi.Mount{
			ContainerPath: vm.MountPath,
			HostPath:      hostPath,
			Readonly:      vm.ReadOnly,
		}
		if vm.MountPropagation != nil {
			switch *vm.MountPropagation {
			case v1.MountPropagationHostToContainer:
				mount.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case v1.MountPropagationBidirectional:
				mount.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			}
		}
		mounts = append(mounts, mount)
	}
	return mounts, nil
}

// PodDir is where knode keeps a pod's volumes: <root-dir>/pods/<uid>.
func PodDir(rootDir string, pod *v1.Pod) string {
	return filepath.Join(rootDir, "pods", string(pod.UID))
}

func (m *Manager) volumeHostPath(pod *v1.Pod, vol *v1.Volume) (string, error) {
	switch {
	case vol.EmptyDir != nil:
		dir := filepath.Join(PodDir(m.opts.RootDir, pod), "volumes", "kubernetes.io~empty-dir", vol.Name)
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return "", fmt.Errorf("emptyDir %q: %w", vol.Name, err)
		}
		if vol.EmptyDir.Medium == v1.StorageMediumMemory {
			if err := mountTmpfs(dir, vol.EmptyDir.SizeLimit); err != nil {
				return "", fmt.Errorf("emptyDir %q (medium Memory): %w", vol.Name, err)
			}
		}
		// World-writable like the kubelet's, so non-root containers can use it.
		if err := os.Chmod(dir, 0o777); err != nil {
			return "", fmt.Errorf("emptyDir %q: %w", vol.Name, err)
		}
		return dir, nil
	case vol.HostPath != nil:
		return vol.HostPath.Path, checkHostPath(vol)
	case vol.ConfigMap != nil, vol.Secret != nil, vol.Projected != nil, vol.DownwardAPI != nil:
		return m.apiVolume(pod, vol)
	default:
		return "", fmt.Errorf("volume %q: unsupported volume type", vol.Name)
	}
}

func checkHostPath(vol *v1.Volume) error {
	p := vol.HostPath.Path
	t := v1.HostPathUnset
	if vol.HostPath.Type != nil {
		t = *vol.HostPath.Type
	}
	fi, statErr := os.Stat(p)
	fail := func(want string) error {
		return fmt.Errorf("hostPath volume %q: %s is not %s", vol.Name, p, want)
	}
	switch t {
	case v1.HostPathUnset:
		return nil
	case v1.HostPathDirectoryOrCreate:
		if statErr != nil {
			return os.MkdirAll(p, 0o755)
		}
		if !fi.IsDir() {
			return fail("a directory")
		}
	case v1.HostPathFileOrCreate:
		if statErr != nil {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return fmt.Errorf("hostPath volume %q: %w", vol.Name, err)
			}
			return f.Close()
		}
		if !fi.Mode().IsRegular() {
			return fail("a file")
		}
	case v1.HostPathDirectory:
		if statErr != nil || !fi.IsDir() {
			return fail("an existing directory")
		}
	case v1.HostPathFile:
		if statErr != nil || !fi.Mode().IsRegular() {
			return fail("an existing file")
		}
	case v1.HostPathSocket:
		if statErr != nil || fi.Mode()&os.ModeSocket == 0 {
			return fail("a socket")
		}
	case v1.HostPathCharDev:
		if statErr != nil || fi.Mode()&os.ModeCharDevice == 0 {
			return fail("a character device")
		}
	case v1.HostPathBlockDev:
		if statErr != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
			return fail("a block device")
		}
	default:
		return fmt.Errorf("hostPath volume %q: unknown type %q", vol.Name, t)
	}
	return nil
}

// mountTmpfs backs a memory emptyDir with tmpfs (once), sized by its limit.
func mountTmpfs(dir string, limit *resource.Quantity) error {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) == nil && unix.Stat(filepath.Dir(dir), &parent) == nil && st.Dev != parent.Dev {
		return nil // already a mount point
	}
	opts := "mode=0777"
	if limit != nil && !limit.IsZero() {
		opts += ",size=" + strconv.FormatInt(limit.Value(), 10)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	return nil
}

// unmountVolumes detaches the tmpfs mounts under a pod's directory before it is removed.
func unmountVolumes(podDir string) {
	dirs, _ := filepath.Glob(filepath.Join(podDir, "volumes", "kubernetes.io~empty-dir", "*"))
	for _, d := range dirs {
		_ = unix.Unmount(d, unix.MNT_DETACH)
	}
}
