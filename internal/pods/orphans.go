package pods

import "k8s.io/apimachinery/pkg/types"

// removeOrphanedCgroups destroys, once every source has been seen, the
// pod cgroups of pods neither declared nor in the runtime (keep), as the
// kubelet's cleanupOrphanedPodCgroups: a pod deleted while knode was down
// leaves its cgroup, and whatever escaped the runtime's cleanup in it
// would run on, charged to nothing knode accounts for.
func (m *Manager) removeOrphanedCgroups(keep map[types.UID]bool) {
	removed, err := m.opts.Cgroups.RemoveOrphans(keep)
	for _, uid := range removed {
		m.log.Info("Orphaned pod found, removing pod cgroups", "podUID", uid)
	}
	if err != nil {
		m.log.Warn("Failed to destroy orphaned pod cgroups", "err", err)
	}
}
