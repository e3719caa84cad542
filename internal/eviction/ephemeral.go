package eviction

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	"knode.io/knode/internal/podsource"
	"knode.io/knode/internal/safefs"
)

// WritableLayers is what the runtime measures of containers' disks: each
// running container's writable layer in bytes, by pod and container name.
type WritableLayers interface {
	WritableLayers(ctx context.Context) (map[types.UID]map[string]uint64, error)
}

// WithPodLogs tells the manager where the pods' log directories are (the
// kubelet's pod logs dir): a container's logs count against its
// ephemeral-storage limit.
func (m *Manager) WithPodLogs(dir string) *Manager {
	m.podLogsDir = dir
	return m
}

// ephemeralOverLimit is the kubelet's local storage eviction after the
// emptyDir check: a pod whose containers' disk use (writable layer and
// logs) and disk emptyDirs exceed the sum of its containers'
// ephemeral-storage limits, then a container over its own limit. The pod
// is evicted at once with the kubelet's message; static and critical
// pods are not, as in the kubelet. Something that cannot be measured
// counts as over, as a too-deep emptyDir does.
func (m *Manager) ephemeralOverLimit(ctx context.Context, pods Pods, layers WritableLayers) types.UID {
	var writable map[types.UID]map[string]uint64
	for _, p := range pods.Pods() {
		if podsource.IsStatic(p) || p.Status.Phase == v1.PodFailed || p.Status.Phase == v1.PodSucceeded ||
			p.Spec.Priority != nil && *p.Spec.Priority >= CriticalPriority {
			continue
		}
		limits := ephemeralLimits(p)
		if len(limits) == 0 {
			continue
		}
		if writable == nil {
			var err error
			if writable, err = layers.WritableLayers(ctx); err != nil {
				m.log.Warn("containers' disk use cannot be read", "err", err)
				return ""
			}
		}
		var podUsed uint64
		var podLimit resource.Quantity
		over := ""
		for _, c := range append(append([]v1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			used := writable[p.UID][c.Name] + m.logBytes(p, c.Name)
			podUsed += used
			if limit, ok := limits[c.Name]; ok {
				podLimit.Add(limit)
				if over == "" && used > uint64(limit.Value()) {
					over = fmt.Sprintf("Container %s exceeded its local ephemeral storage limit %q. ", c.Name, limit.String())
				}
			}
		}
		podUsed += m.emptyDirBytes(p)
		message := over
		if podLimit.Sign() > 0 && podUsed > uint64(podLimit.Value()) {
			message = fmt.Sprintf("Pod ephemeral local storage usage exceeds the total limit of containers %s. ", podLimit.String())
		}
		if message != "" && pods.Evict(p.UID, message, "") {
			m.log.Warn("evicting a pod over its ephemeral-storage limit", "pod", p.Namespace+"/"+p.Name, "message", message)
			return p.UID
		}
	}
	return ""
}

// ephemeralLimits are the ephemeral-storage limits of the containers the
// kubelet checks: regular containers and sidecars.
func ephemeralLimits(p *v1.Pod) map[string]resource.Quantity {
	out := map[string]resource.Quantity{}
	for _, c := range podsource.RunningContainers(p) {
		if q, ok := c.Resources.Limits[v1.ResourceEphemeralStorage]; ok && q.Sign() > 0 {
			out[c.Name] = q
		}
	}
	return out
}

// unmeasurable is what a directory that cannot be measured counts as:
// over any limit.
const unmeasurable = 1 << 62

// logBytes is the size of a container's log files, measured beneath the
// pod's log directory without following links.
func (m *Manager) logBytes(p *v1.Pod, container string) uint64 {
	if m.podLogsDir == "" {
		return 0
	}
	dir := filepath.Join(m.podLogsDir, fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), container)
	return m.dirBytes(dir)
}

// emptyDirBytes is the pod's disk emptyDirs' use.
func (m *Manager) emptyDirBytes(p *v1.Pod) uint64 {
	var sum uint64
	for _, vol := range p.Spec.Volumes {
		if ed := vol.EmptyDir; ed != nil && ed.Medium != v1.StorageMediumMemory {
			sum += m.dirBytes(filepath.Join(m.rootDir, "pods", string(p.UID), "volumes", "kubernetes.io~empty-dir", vol.Name))
		}
	}
	return sum
}

func (m *Manager) dirBytes(dir string) uint64 {
	d, err := safefs.Open(dir)
	if err != nil {
		return 0 // not made yet, or already gone
	}
	defer d.Close()
	used, err := d.DiskUsage(unmeasurable)
	if errors.Is(err, safefs.ErrTooDeep) {
		return unmeasurable
	}
	if err != nil {
		return 0
	}
	return uint64(used)
}
