package qos

import (
	"errors"
	"fmt"
	"path"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"knode.io/knode/internal/podpath"
)

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
			// A pod cgroup is "pod" and the pod's UID, of the form every
			// pod's UID is checked against (podpath); anything else beneath
			// the QoS cgroups is not a pod's and is left alone.
			id, ok := strings.CutPrefix(name, "pod")
			if !ok || len(podpath.UID(id)) > 0 {
				continue
			}
			uid := types.UID(id)
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
