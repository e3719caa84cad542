package crispec

import (
	"encoding/json"
	"hash/fnv"
	"path/filepath"
	"strconv"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/qos"
)

// ContainerInput is what one instance of a container is built from
// besides the pod's spec: its place in the restart sequence, and what the
// node prepared for it (the env Env resolved, the mounts Mount built on the
// volumes' host paths).
type ContainerInput struct {
	RestartCount int
	IsInit       bool
	Envs         []*runtimeapi.KeyValue
	Mounts       []*runtimeapi.Mount
	// ImageRef is the image ID the container's image resolved to when it
	// was ensured (pulled or found present), and ImageUser is that image's
	// user (ImageUserOf), used when the pod names none;
	// CheckContainerSecurity has verified runAsNonRoot against it. The
	// container is created from ImageRef, not from the spec's name, as the
	// kubelet creates it: a tag re-pointed after the checks (a push and
	// another pod's pull) cannot change what runs.
	ImageRef  string
	ImageUser ImageUser
}

// Container builds the CRI container config the way the kubelet does:
// the labels and annotations the kubelet's tools read, command and args
// with $(VAR) expanded from the env, resources and security context.
func Container(pod *v1.Pod, c *v1.Container, in ContainerInput, node Node) *runtimeapi.ContainerConfig {
	restartCount, isInit, envs, mounts := in.RestartCount, in.IsInit, in.Envs, in.Mounts
	lookup := EnvLookup(envs)
	command := ExpandAll(c.Command, lookup)
	args := ExpandAll(c.Args, lookup)
	annotations := map[string]string{
		AnnotationContainerHash:          ContainerHash(c),
		AnnotationRestartCount:           strconv.Itoa(restartCount),
		AnnotationTerminationMessagePath: c.TerminationMessagePath,
		AnnotationTerminationMsgPolicy:   string(c.TerminationMessagePolicy),
		AnnotationPodTerminationGrace:    strconv.FormatInt(GracePeriod(pod), 10),
	}
	if len(c.Ports) > 0 {
		if b, err := json.Marshal(c.Ports); err == nil {
			annotations[AnnotationContainerPorts] = string(b)
		}
	}
	if isInit {
		annotations[AnnotationInit] = "true"
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: uint32(restartCount)},
		Image:      &runtimeapi.ImageSpec{Image: in.ImageRef, UserSpecifiedImage: c.Image},
		Command:    command,
		Args:       args,
		WorkingDir: c.WorkingDir,
		Envs:       envs,
		Mounts:     mounts,
		Labels: map[string]string{
			LabelContainerName: c.Name,
			LabelPodName:       pod.Name,
			LabelPodNamespace:  pod.Namespace,
			LabelPodUID:        string(pod.UID),
			LabelManagedBy:     ManagedByValue,
			LabelNode:          node.NodeName,
		},
		Annotations: annotations,
		LogPath:     filepath.Join(c.Name, strconv.Itoa(restartCount)+".log"),
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       linuxResources(pod, c, node.MemoryBytes),
			SecurityContext: containerSecurityContext(pod, c, in.ImageUser, node.Security),
		},
	}
	return cfg
}

// GracePeriod is the pod's terminationGracePeriodSeconds, or the default.
func GracePeriod(pod *v1.Pod) int64 {
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return v1.DefaultTerminationGracePeriodSeconds
}

// ContainerHash identifies what of a container's spec may change in a
// running API pod and make the kubelet restart it: its name and image
// (the kubelet's HashContainer picks the same fields; its value differs).
func ContainerHash(c *v1.Container) string {
	b, _ := json.Marshal(map[string]string{"name": c.Name, "image": c.Image})
	h := fnv.New32a()
	h.Write(b)
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}

// HashMatches reports whether a container's hash annotation is c's: by
// ContainerHash, or by the whole-spec hash knode wrote before, so that
// containers started by an older knode are not restarted for it.
func HashMatches(c *v1.Container, annotation string) bool {
	if annotation == ContainerHash(c) {
		return true
	}
	b, _ := json.Marshal(c)
	h := fnv.New32a()
	h.Write(b)
	return annotation == strconv.FormatUint(uint64(h.Sum32()), 16)
}

// linuxResources are the container's CPU shares and CFS quota, memory
// limit and oom_score_adj by its pod's QoS class, as the kubelet's
// generateLinuxContainerResources sets them.
func linuxResources(pod *v1.Pod, c *v1.Container, memoryCapacity int64) *runtimeapi.LinuxContainerResources {
	res := &runtimeapi.LinuxContainerResources{OomScoreAdj: qos.OOMScoreAdj(pod, c, memoryCapacity)}
	// Shares within the kernel's [2, 262144], as the kubelet clamps them:
	// beyond it the runtime refuses the container.
	if q, ok := c.Resources.Requests[v1.ResourceCPU]; ok {
		res.CpuShares = qos.CPUShares(q)
	} else if q, ok := c.Resources.Limits[v1.ResourceCPU]; ok {
		res.CpuShares = qos.CPUShares(q)
	} else {
		res.CpuShares = qos.MinShares
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
