package pods

import (
	"log/slog"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"knode.io/knode/internal/allocstate"
)

// allocations is the kubelet's allocation manager for in-place pod resize
// (`kubectl patch --subresource resize`): it decides and checkpoints the
// resources each pod's containers were admitted with (allocated), whether
// a resize waits (PodResizePending: Deferred or Infeasible), and the
// resources last applied to each running container (actuated). Each pod's
// own allocation is in its record (podAllocation) and goes with it; this
// holds what all pods share: the node's room, the admission chain and the
// checkpoint files. Workers see their pod with its allocated resources, so
// a container (re)created while a resize waits gets what was admitted, as
// with the kubelet; and since the files are read on start, a restart keeps
// both a waiting resize waiting and an admitted one to be applied.
type allocations struct {
	// mu guards every pod's podAllocation.
	mu sync.Mutex
	// allocatable is the node's allocatable CPU (milli) and memory.
	allocatable func() (cpuMilli, memBytes int64)
	// fit runs the admission chain for a resized pod against the other
	// admitted pods; nil: only the allocatable counts.
	fit func(pod *v1.Pod) (ok bool, message string)
	// all lists the pods' allocations (the records'); set by the manager.
	all func() []*podAllocation
	log *slog.Logger

	// saveMu orders checkpoint writes: each writes a state at least as
	// new as the one before.
	saveMu sync.Mutex
	// allocatedFile and actuatedFile are the kubelet's checkpoints in the
	// root dir; nil without one (in memory only).
	allocatedFile, actuatedFile *allocstate.File
	// restored is what the checkpoints hold for pods knode has not seen
	// since it started (guarded by mu): each pod's goes into its record
	// when that is made, the rest is dropped once every source has spoken
	// (the kubelet's RemoveOrphanedPods), and kept in the files until then.
	restored map[types.UID]*podAllocation
}

// podAllocation is one pod's allocation, in its record; guarded by
// allocations.mu.
type podAllocation struct {
	uid types.UID
	// allocated is set once containers hold what the pod was admitted
	// with (at its first sync, or restored from the checkpoint).
	allocated bool
	// containers are the allocated resources by container name (app and
	// sidecar containers: the resizable ones).
	containers map[string]v1.ResourceRequirements
	// cpu and mem are the pod's allocated CPU (milli) and memory requests;
	// sized is set once they were computed (a restored pod's at its first
	// sync).
	cpu, mem int64
	sized    bool
	// pending is why the last asked resize waits ("" when none does).
	pendingReason, pendingMessage string
	// actuated are the resources applied to each container's running
	// instance, by container name, as the kubelet keys them.
	actuated map[string]actuation
	// resizeErr is the last failed actuation's error ("" after a success).
	resizeErr string
}

// actuation is what one container instance was given.
type actuation struct {
	// id is the instance's container ID; "" when restored from the
	// checkpoint and not yet matched to the running instance.
	id  string
	res v1.ResourceRequirements
}

func newAllocations(allocatable func() (cpuMilli, memBytes int64), log *slog.Logger) *allocations {
	return &allocations{allocatable: allocatable, log: log, all: func() []*podAllocation { return nil },
		restored: map[types.UID]*podAllocation{}}
}

// open reads the kubelet's checkpoints in rootDir ("": none, in memory
// only) before any pod is seen, and writes them from then on. A file that
// cannot be read or verified is an error (knode does not start, as the
// kubelet does not): applying a wrong allocation to running containers is
// worse than not starting.
func (a *allocations) open(rootDir string) error {
	if rootDir == "" {
		return nil
	}
	allocatedFile, allocated, err := allocstate.Open(rootDir, allocstate.Allocated)
	if err != nil {
		return err
	}
	actuatedFile, actuated, err := allocstate.Open(rootDir, allocstate.Actuated)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.allocatedFile, a.actuatedFile = allocatedFile, actuatedFile
	restoredPod := func(uid types.UID) *podAllocation {
		pa := a.restored[uid]
		if pa == nil {
			pa = &podAllocation{uid: uid}
			a.restored[uid] = pa
		}
		return pa
	}
	for uid, containers := range allocated {
		pa := restoredPod(uid)
		pa.allocated, pa.containers = true, containers
	}
	for uid, containers := range actuated {
		pa := restoredPod(uid)
		pa.actuated = make(map[string]actuation, len(containers))
		for name, res := range containers {
			pa.actuated[name] = actuation{res: res}
		}
	}
	if len(a.restored) > 0 {
		a.log.Info("restored in-place resize allocations from checkpoint", "pods", len(a.restored))
	}
	return nil
}

// newPod is the allocation for a record being made: what the checkpoints
// held for it, or none yet. wasAdmitted tells a pod allocated before the
// restart: it was admitted then and counts against the node's resources
// from now on, before its worker finds it running.
func (a *allocations) newPod(uid types.UID) (pa *podAllocation, wasAdmitted bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if pa := a.restored[uid]; pa != nil {
		delete(a.restored, uid)
		return pa, pa.allocated
	}
	return &podAllocation{uid: uid}, false
}

// dropRestored forgets what the checkpoints held for pods no source
// declares nor the runtime runs, once every source has spoken.
func (a *allocations) dropRestored() {
	a.mu.Lock()
	n := len(a.restored)
	a.restored = map[types.UID]*podAllocation{}
	a.mu.Unlock()
	if n > 0 {
		a.log.Info("dropped the checkpointed allocations of pods that are gone", "pods", n)
		a.save()
	}
}

// save writes the checkpoints: the allocated and actuated resources of
// every pod with a record, and those restored for pods not seen yet. A
// failed write is logged, as the kubelet logs it; the pods keep running
// with their allocation, which the next change writes again.
func (a *allocations) save() {
	if a.allocatedFile == nil {
		return
	}
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	pods := a.all()
	allocated, actuated := allocstate.Pods{}, allocstate.Pods{}
	a.mu.Lock()
	add := func(pa *podAllocation) {
		if pa.allocated {
			containers := make(map[string]v1.ResourceRequirements, len(pa.containers))
			for name, res := range pa.containers {
				containers[name] = *res.DeepCopy()
			}
			allocated[pa.uid] = containers
		}
		if len(pa.actuated) > 0 {
			containers := make(map[string]v1.ResourceRequirements, len(pa.actuated))
			for name, act := range pa.actuated {
				containers[name] = *act.res.DeepCopy()
			}
			actuated[pa.uid] = containers
		}
	}
	for _, pa := range pods {
		add(pa)
	}
	for _, pa := range a.restored {
		add(pa)
	}
	a.mu.Unlock()
	if err := a.allocatedFile.Write(allocated); err != nil {
		a.log.Error("Failed to save pod resource information checkpoint", "file", allocstate.Allocated, "err", err)
	}
	if err := a.actuatedFile.Write(actuated); err != nil {
		a.log.Error("Failed to save pod resource information checkpoint", "file", allocstate.Actuated, "err", err)
	}
}

// allocations lists the records' allocations.
func (m *Manager) allocations() []*podAllocation {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*podAllocation, 0, len(m.records))
	for _, r := range m.records {
		out = append(out, r.alloc)
	}
	return out
}
