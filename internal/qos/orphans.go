package qos

import (
	"errors"
	"fmt"
	"path"
	"regexp"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podCgroupName is a pod cgroup's name as the kubelet makes it: "pod"
// and the pod's UID. Anything else beneath the QoS cgroups is not a pod's
// and is left alone.
var podCgroupName = regexp.MustCompile(`^pod([a-z0-9][a-z0-9-]{0,62})$`)

// RemoveOrphans removes the cgroups of pods that are not known (keep),
// found beneath kubepods, kubepods/burstable and kubepods/besteffort in
// any hierarchy, as the kubelet's cleanupOrphanedPodCgroups does once
// every pod source has been seen: their remaining processes are killed,
// then the cgroup and the container cgroups under it are removed. Nothing
// outside those three cgroups under the cgroup root is looked at. It
// returns the UIDs whose cgroups were destroyed, and what failed.
func (c *Cgroups) RemoveOrphans(keep map[types.UID]bool) ([]types.UID, error) {
	var removed []types.UID
	var errs []error
	for _, class := range []v1.PodQOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		parent := ClassCgroup(c.root, class)
		children, err := c.fs.Children(parent)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, name := range children {
			m := podCgroupName.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			uid := types.UID(m[1])
			if keep[uid] {
				continue
			}
			if err := c.fs.Destroy(path.Join(parent, name)); err != nil {
				errs = append(errs, fmt.Errorf("failed to destroy orphaned pod cgroup of pod %s: %w", uid, err))
				continue
			}
			removed = append(removed, uid)
		}
	}
	return removed, errors.Join(errs...)
}
