package pods

import (
	"context"
	"fmt"
	"math"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	podadmission "knode.io/knode/internal/admission"
	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/podsource"
)

// Resizer is the runtime call an in-place resize needs; *cri.Runtime has it.
type Resizer interface {
	UpdateContainerResources(ctx context.Context, containerID string, resources *runtimeapi.ContainerResources) error
}

// allocatableCPUMemory is the node's allocatable CPU and memory as the
// node reports them, or its whole CPUs and memory without that.
func allocatableCPUMemory(opts Options) func() (int64, int64) {
	return func() (int64, int64) {
		if opts.Allocatable != nil {
			alloc := opts.Allocatable()
			return alloc.Cpu().MilliValue(), alloc.Memory().Value()
		}
		return int64(opts.NodeCPUs) * 1000, opts.NodeMemoryBytes
	}
}

// podRequests is the pod's effective CPU (milli) and memory requests as the
// scheduler counts them: app and sidecar containers add up, a regular init
// container counts alone (with the sidecars started before it), plus
// overhead. Summed as quantities and saturated: int64 sums of huge
// requests would wrap negative and fit any node.
func podRequests(pod *v1.Pod) (cpu, mem int64) {
	reqs := podadmission.Requests(pod)
	return podadmission.Saturated(reqs[v1.ResourceCPU], true), podadmission.Saturated(reqs[v1.ResourceMemory], false)
}

// admitted allocates the pod's spec once admission took it (or it was
// found running), as the kubelet allocates at admission: a refused pod
// holds nothing. What is allocated is checkpointed before the pod runs.
func (a *allocations) admitted(pa *podAllocation, pod *v1.Pod) {
	a.mu.Lock()
	if pa.allocated {
		a.mu.Unlock()
		return
	}
	a.allocate(pa, pod)
	a.mu.Unlock()
	a.save()
}

// admit returns pod as its containers run: with the resources allocated
// to it (pa, its record's; the spec before admission). A resize the
// sources ask for is allocated when the node can hold it; else it waits,
// Infeasible (more than the node has) or Deferred (more than the other
// pods leave), with the kubelet's messages, and is tried again at every
// sync.
func (a *allocations) admit(pa *podAllocation, pod *v1.Pod) *v1.Pod {
	a.mu.Lock()
	if !pa.allocated {
		a.mu.Unlock()
		return pod
	}
	if !pa.sized {
		// Restored from the checkpoint: counted as allocated.
		pa.cpu, pa.mem = podRequests(a.allocatedPod(pa, pod))
		pa.sized = true
	}
	changed := false
	for _, c := range podsource.RunningContainers(pod) {
		if alloc, ok := pa.containers[c.Name]; !ok || !apiequality.Semantic.DeepEqual(alloc, c.Resources) {
			changed = true
		}
	}
	switch {
	case !changed:
		pa.pendingReason, pa.pendingMessage = "", ""
		a.mu.Unlock()
		return pod
	case podsource.IsStatic(pod):
		// A changed manifest replaces a static pod; nothing resizes it in place.
		a.allocate(pa, pod)
		a.mu.Unlock()
		a.save()
		return pod
	}
	a.mu.Unlock()
	// The admission chain reads the other pods' allocations: no lock held.
	reason, msg := a.fits(pod)
	a.mu.Lock()
	if reason != "" {
		pa.pendingReason, pa.pendingMessage = reason, msg
		defer a.mu.Unlock()
		return a.allocatedPod(pa, pod)
	}
	a.allocate(pa, pod)
	pa.pendingReason, pa.pendingMessage, pa.resizeErr = "", "", ""
	a.mu.Unlock()
	a.save()
	return pod
}

// view is pod with the resources allocated to it (pa), for counting it
// among the admitted pods.
func (a *allocations) view(pa *podAllocation, pod *v1.Pod) *v1.Pod {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !pa.allocated {
		return pod
	}
	for _, c := range podsource.RunningContainers(pod) {
		if alloc, ok := pa.containers[c.Name]; ok && !apiequality.Semantic.DeepEqual(alloc, c.Resources) {
			return a.allocatedPod(pa, pod)
		}
	}
	return pod
}

func (a *allocations) allocate(pa *podAllocation, pod *v1.Pod) {
	pa.containers = map[string]v1.ResourceRequirements{}
	for _, c := range podsource.RunningContainers(pod) {
		pa.containers[c.Name] = *c.Resources.DeepCopy()
	}
	pa.cpu, pa.mem = podRequests(pod)
	pa.allocated, pa.sized = true, true
}

// allocatedPod is a copy of pod with the allocated resources.
func (a *allocations) allocatedPod(pa *podAllocation, pod *v1.Pod) *v1.Pod {
	out := pod.DeepCopy()
	for _, c := range podsource.RunningContainers(out) {
		if alloc, ok := pa.containers[c.Name]; ok {
			c.Resources = *alloc.DeepCopy()
		}
	}
	return out
}

// fits is the kubelet's canResizePod: Infeasible beyond the node's
// allocatable, Deferred when the admission chain (or, without one, the
// room the other pods' allocations leave) refuses the resized pod.
func (a *allocations) fits(pod *v1.Pod) (reason, message string) {
	cpuCap, memCap := a.allocatable()
	cpu, mem := podRequests(pod)
	if cpu > cpuCap || mem > memCap {
		if mem > memCap {
			return v1.PodReasonInfeasible, fmt.Sprintf("Node didn't have enough capacity: memory, requested: %d, capacity: %d", mem, memCap)
		}
		return v1.PodReasonInfeasible, fmt.Sprintf("Node didn't have enough capacity: cpu, requested: %d, capacity: %d", cpu, cpuCap)
	}
	if a.fit != nil {
		if ok, msg := a.fit(pod); !ok {
			return v1.PodReasonDeferred, msg
		}
		return "", ""
	}
	others := a.all()
	a.mu.Lock()
	var usedCPU, usedMem int64
	for _, other := range others {
		if other.uid != pod.UID && other.allocated {
			usedCPU = min(usedCPU, math.MaxInt64-other.cpu) + other.cpu
			usedMem = min(usedMem, math.MaxInt64-other.mem) + other.mem
		}
	}
	a.mu.Unlock()
	switch {
	case cpu > cpuCap-usedCPU:
		return v1.PodReasonDeferred, fmt.Sprintf("Node didn't have enough resource: cpu, requested: %d, used: %d, capacity: %d", cpu, usedCPU, cpuCap)
	case mem > memCap-usedMem:
		return v1.PodReasonDeferred, fmt.Sprintf("Node didn't have enough resource: memory, requested: %d, used: %d, capacity: %d", mem, usedMem, memCap)
	}
	return "", ""
}

// forget empties the allocation of a pod that is gone from sources and
// runtime, before its record goes, and checkpoints that.
func (a *allocations) forget(pa *podAllocation) {
	a.mu.Lock()
	*pa = podAllocation{uid: pa.uid}
	a.mu.Unlock()
	a.save()
}

// actuated returns what was applied to container name's running instance
// id. An instance seen for the first time was created with the allocated
// resources (recorded so); one restored from the checkpoint, with no
// instance yet, is the instance running now (none is started while knode
// is down).
func (a *allocations) actuated(pa *podAllocation, name, id string, allocated v1.ResourceRequirements) v1.ResourceRequirements {
	a.mu.Lock()
	act, ok := pa.actuated[name]
	switch {
	case ok && act.id == id:
		a.mu.Unlock()
		return act.res
	case ok && act.id == "":
		act.id = id
		pa.actuated[name] = act
		a.mu.Unlock()
		return act.res
	}
	if pa.actuated == nil {
		pa.actuated = map[string]actuation{}
	}
	res := *allocated.DeepCopy()
	pa.actuated[name] = actuation{id: id, res: res}
	a.mu.Unlock()
	a.save()
	return res
}

// applied records an actuation's outcome.
func (a *allocations) applied(pa *podAllocation, name, id string, res v1.ResourceRequirements, err error) {
	a.mu.Lock()
	if err != nil {
		pa.resizeErr = err.Error()
		a.mu.Unlock()
		return
	}
	if pa.actuated == nil {
		pa.actuated = map[string]actuation{}
	}
	pa.actuated[name] = actuation{id: id, res: *res.DeepCopy()}
	pa.resizeErr = ""
	a.mu.Unlock()
	a.save()
}

// cpuMemEqual compares the CPU and memory a container is given.
func cpuMemEqual(a, b v1.ResourceRequirements) bool {
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		if !quantityEqual(a.Requests, b.Requests, name) || !quantityEqual(a.Limits, b.Limits, name) {
			return false
		}
	}
	return true
}

func quantityEqual(a, b v1.ResourceList, name v1.ResourceName) bool {
	qa, oka := a[name]
	qb, okb := b[name]
	return oka == okb && (!oka || qa.Cmp(qb) == 0)
}

// needsRestart tells whether a resize from cur to want changes a resource
// whose resizePolicy is RestartContainer (NotRequired is the default).
func needsRestart(c *v1.Container, cur, want v1.ResourceRequirements) bool {
	for _, p := range c.ResizePolicy {
		if p.RestartPolicy != v1.RestartContainer {
			continue
		}
		if !quantityEqual(cur.Requests, want.Requests, p.ResourceName) || !quantityEqual(cur.Limits, want.Limits, p.ResourceName) {
			return true
		}
	}
	return false
}

// shrinks tells a resize that lowers any CPU or memory value: those are
// applied before the increases, as the kubelet orders them.
func shrinks(cur, want v1.ResourceRequirements) bool {
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		for _, lists := range [][2]v1.ResourceList{{cur.Requests, want.Requests}, {cur.Limits, want.Limits}} {
			c, w := lists[0][name], lists[1][name]
			if w.Cmp(c) < 0 {
				return true
			}
		}
	}
	return false
}

// syncResize brings the running containers to their allocated resources:
// a container whose changed resource has resizePolicy RestartContainer is
// stopped (its restart gets them), the others are updated in place with
// CRI UpdateContainerResources, decreases first.
func (s *podSync) syncResize(ctx context.Context) {
	w := s.w
	allocs, pa := w.d.allocs, w.rec.alloc
	type update struct {
		c    *v1.Container
		id   string
		want v1.ResourceRequirements
	}
	var shrinking, growing []update
	for _, c := range podsource.RunningContainers(s.pod) {
		ct := first(s.rp.instances(c.Name, s.sb.Id))
		if ct == nil || ct.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		cur := allocs.actuated(pa, c.Name, ct.Id, c.Resources)
		if cpuMemEqual(cur, c.Resources) {
			continue
		}
		if needsRestart(c, cur, c.Resources) {
			msg := fmt.Sprintf("Container %s resize requires restart", c.Name)
			s.normal("Killing", msg)
			w.d.log.Info("resize needs a restart; stopping the container", "pod", podRef(s.pod, nil), "container", c.Name)
			w.d.hooks.stopContainer(ctx, s.pod, ct, w.terminationGrace(s.rp), s.podIP)
			w.d.records.wakeRelist()
			s.requeue(time.Second)
			continue
		}
		u := update{c: c, id: ct.Id, want: c.Resources}
		if shrinks(cur, c.Resources) {
			shrinking = append(shrinking, u)
		} else {
			growing = append(growing, u)
		}
	}
	updates := append(shrinking, growing...)
	if len(updates) == 0 {
		return
	}
	rs, ok := w.d.Runtime.(Resizer)
	// The pod's cgroup holds its containers: raised before they grow,
	// brought to the new spec again once they are resized.
	if len(growing) > 0 {
		if err := w.d.Cgroups.EnsurePod(s.pod); err != nil {
			w.d.log.Warn("resize the pod cgroup", "pod", podRef(s.pod, nil), "err", err)
		}
	}
	defer func() {
		if err := w.d.Cgroups.EnsurePod(s.pod); err != nil {
			w.d.log.Warn("resize the pod cgroup", "pod", podRef(s.pod, nil), "err", err)
		}
	}()
	for _, u := range updates {
		var err error
		if !ok {
			err = fmt.Errorf("the container runtime cannot update container resources")
		} else {
			uctx, cancel := context.WithTimeout(ctx, w.d.RequestTimeout)
			err = rs.UpdateContainerResources(uctx, u.id, crispec.Resources(s.pod, u.c, w.d.node.MemoryBytes))
			cancel()
		}
		if err != nil {
			err = fmt.Errorf("failed to update resources of container %s: %w", u.c.Name, err)
			w.d.log.Warn("in-place resize failed", "pod", podRef(s.pod, nil), "container", u.c.Name, "err", err)
			allocs.applied(pa, u.c.Name, u.id, u.want, err)
			s.requeue(10 * time.Second)
			// A later update may rely on this one's decrease.
			return
		}
		w.d.log.Info("container resized in place", "pod", podRef(s.pod, nil), "container", u.c.Name)
		allocs.applied(pa, u.c.Name, u.id, u.want, nil)
	}
}

// resizeStatus adds the kubelet's resize fields to a built status: each
// resizable container's allocatedResources (requests) and resources (what
// its running instance was given; the allocation when not running), and
// the PodResizePending and PodResizeInProgress conditions.
func (w *worker) resizeStatus(pod *v1.Pod, rp *runtimePod, st *v1.PodStatus, prev *v1.PodStatus) {
	a, pa := w.d.allocs, w.rec.alloc
	a.mu.Lock()
	if !pa.allocated {
		a.mu.Unlock()
		return
	}
	inProgress := false
	statuses := map[string]*v1.ContainerStatus{}
	for _, list := range [][]v1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
		for i := range list {
			statuses[list[i].Name] = &list[i]
		}
	}
	for _, c := range podsource.RunningContainers(pod) {
		cs := statuses[c.Name]
		alloc, ok := pa.containers[c.Name]
		if cs == nil || !ok {
			continue
		}
		if len(alloc.Requests) > 0 {
			cs.AllocatedResources = cpuMem(alloc.Requests)
		}
		res := alloc
		if cs.State.Running != nil {
			if ct := first(rp.instances(c.Name, "")); ct != nil {
				if act, seen := pa.actuated[c.Name]; seen && (act.id == ct.Id || act.id == "") {
					res = act.res
				}
			}
			if !cpuMemEqual(res, alloc) {
				inProgress = true
			}
		}
		cs.Resources = &v1.ResourceRequirements{Limits: cpuMem(res.Limits), Requests: cpuMem(res.Requests)}
	}
	reason, message, resizeErr := pa.pendingReason, pa.pendingMessage, pa.resizeErr
	a.mu.Unlock()
	if reason != "" {
		st.Conditions = append(st.Conditions, resizeCondition(prev, v1.PodResizePending, reason, message))
	}
	if inProgress {
		c := resizeCondition(prev, v1.PodResizeInProgress, "", "")
		if resizeErr != "" {
			c = resizeCondition(prev, v1.PodResizeInProgress, v1.PodReasonError, resizeErr)
		}
		st.Conditions = append(st.Conditions, c)
	}
}

// cpuMem keeps the CPU and memory of a resource list (nil when neither).
func cpuMem(l v1.ResourceList) v1.ResourceList {
	var out v1.ResourceList
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		if q, ok := l[name]; ok {
			if out == nil {
				out = v1.ResourceList{}
			}
			out[name] = q.DeepCopy()
		}
	}
	return out
}

// resizeCondition is a resize condition (always True while present),
// keeping its transition time while reason and message stay.
func resizeCondition(prev *v1.PodStatus, t v1.PodConditionType, reason, message string) v1.PodCondition {
	c := v1.PodCondition{Type: t, Status: v1.ConditionTrue, Reason: reason, Message: message, LastProbeTime: metav1.Now(), LastTransitionTime: metav1.Now()}
	if prev != nil {
		for _, p := range prev.Conditions {
			if p.Type == t && p.Reason == reason && p.Message == message {
				c.LastTransitionTime, c.LastProbeTime = p.LastTransitionTime, p.LastProbeTime
			}
		}
	}
	return c
}
