package pods

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/podsource"
	"knode.io/knode/internal/qos"
)

// buildStatus derives the pod's v1.PodStatus from the runtime's state and
// the worker's recorded waiting reasons, as the kubelet's status manager does.
func (w *worker) buildStatus(ctx context.Context, pod *v1.Pod, rp *runtimePod) *v1.PodStatus {
	st := &v1.PodStatus{
		HostIP:   w.d.node.HostIP,
		QOSClass: qos.Class(pod),
	}
	if w.d.node.HostIP != "" {
		st.HostIPs = []v1.HostIP{{IP: w.d.node.HostIP}}
	}
	if w.startTime != nil {
		t := metav1.NewTime(*w.startTime)
		st.StartTime = &t
	}
	sb := rp.newestSandbox()
	sandboxReady := sb != nil && sb.State == runtimeapi.PodSandboxState_SANDBOX_READY
	if sandboxReady {
		var ips []string
		if pod.Spec.HostNetwork {
			ips = []string{w.d.node.HostIP}
		} else if got, err := w.d.cache.sandboxIPsFor(ctx, w.d.Runtime, sb); err == nil {
			ips = got
		}
		for _, ip := range ips {
			st.PodIPs = append(st.PodIPs, v1.PodIP{IP: ip})
		}
		if len(ips) > 0 {
			st.PodIP = ips[0]
		}
	}
	// As the kubelet's status manager: the names of the init containers
	// not done and of the containers not ready go into the conditions'
	// messages.
	var incomplete, unready []string
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := w.containerStatus(ctx, pod, rp, c, "PodInitializing")
		if !podsource.IsSidecar(c) {
			// The prober manager marks an init container that succeeded ready.
			cs.Ready = cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
		} else if !cs.Ready {
			unready = append(unready, c.Name)
		}
		if !initDone(c, cs) {
			incomplete = append(incomplete, c.Name)
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	initialized := len(incomplete) == 0
	allReady := true
	for i := range pod.Spec.Containers {
		reason := "ContainerCreating"
		if !initialized {
			reason = "PodInitializing"
		}
		cs := w.containerStatus(ctx, pod, rp, &pod.Spec.Containers[i], reason)
		allReady = allReady && cs.Ready
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	st.EphemeralContainerStatuses = w.ephemeralStatuses(ctx, pod, rp)
	limitPodMessages(pod, st)
	st.Phase = podPhase(pod, st, initialized)
	if p := w.terminalPhase(ctx, pod, rp, sb); p != "" {
		st.Phase = p
	}
	if st.Phase == v1.PodSucceeded || st.Phase == v1.PodFailed {
		allReady = false
	}
	if wt := w.waits[""]; wt.reason != "" {
		st.Reason, st.Message = wt.reason, wt.message
	}
	if len(w.notes) > 0 {
		var notes []string
		for _, n := range w.notes {
			notes = append(notes, n)
		}
		sort.Strings(notes)
		st.Message = strings.Join(notes, "; ")
	}
	if w.rejected != nil {
		// As the kubelet reports a pod it rejected at admission.
		st.Phase, st.Reason, st.Message = v1.PodFailed, w.rejected.reason, w.rejected.message
		allReady = false
	}
	prev := w.d.records.statusOf(w.uid)
	// The generation of the spec this status answers (the kubelet's
	// PodObservedGenerationTracking, on by default since 1.35).
	st.ObservedGeneration = pod.Generation
	st.Conditions = []v1.PodCondition{
		condition(prev, v1.PodReadyToStartContainers, sandboxReady, ""),
		withMessage(condition(prev, v1.PodInitialized, initialized, "ContainersNotInitialized"), "containers with incomplete status: %s", incomplete),
		withMessage(condition(prev, v1.ContainersReady, allReady && initialized, "ContainersNotReady"), "containers with unready status: %s", unready),
		withMessage(condition(prev, v1.PodReady, allReady && initialized, "ContainersNotReady"), "containers with unready status: %s", unready),
		condition(prev, v1.PodScheduled, true, ""),
	}
	readinessGates(pod, st, prev)
	if w.rejected != nil && w.rejected.disruption != "" {
		withDisruption(st, prev, pod, w.rejected.disruption)
	}
	// The API object's own conditions (readiness gates') keep theirs.
	for i := range st.Conditions {
		if podsource.IsKubeletCondition(st.Conditions[i].Type) {
			st.Conditions[i].ObservedGeneration = pod.Generation
		}
	}
	w.resizeStatus(pod, rp, st, prev)
	if st.Phase == v1.PodSucceeded {
		// A completed pod's containers are not "not ready": the kubelet says PodCompleted.
		for i := range st.Conditions {
			if st.Conditions[i].Type != v1.PodScheduled && st.Conditions[i].Type != v1.PodReadyToStartContainers && st.Conditions[i].Status == v1.ConditionFalse {
				st.Conditions[i].Reason, st.Conditions[i].Message = "PodCompleted", ""
			}
		}
	}
	return st
}

// withMessage adds the kubelet's message naming the containers to a False
// condition (fmt's %s of a []string: "[a b]").
func withMessage(c v1.PodCondition, format string, names []string) v1.PodCondition {
	if c.Status == v1.ConditionFalse && len(names) > 0 {
		c.Message = fmt.Sprintf(format, names)
	}
	return c
}

func initDone(c *v1.Container, cs v1.ContainerStatus) bool {
	if podsource.IsSidecar(c) {
		return cs.State.Running != nil
	}
	return cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
}

func (w *worker) containerStatus(ctx context.Context, pod *v1.Pod, rp *runtimePod, c *v1.Container, defaultReason string) v1.ContainerStatus {
	cs := v1.ContainerStatus{Name: c.Name, Image: c.Image}
	instances := rp.instances(c.Name, "")
	wt, hasWait := w.waits[c.Name]
	if len(instances) == 0 {
		if !hasWait {
			wt = waiting{reason: defaultReason}
		}
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: wt.reason, Message: wt.message}
		return cs
	}
	latest := instances[0]
	cs.RestartCount = int32(restartCount(latest))
	cs.ContainerID = w.d.RuntimeName + "://" + latest.Id
	cs.ImageID = latest.ImageRef
	rst, err := w.d.cache.containerStatus(ctx, w.d.Runtime, latest)
	if err != nil {
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: "ContainerStatusUnknown", Message: err.Error()}
		return cs
	}
	if rst.ImageRef != "" {
		cs.ImageID = rst.ImageRef
	}
	switch latest.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		started := w.rec.probes.started(c, latest.Id)
		cs.Started = &started
		cs.Ready = w.rec.probes.ready(c, latest.Id)
		cs.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(time.Unix(0, rst.StartedAt))}
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		started := false
		cs.Started = &started
		term := terminated(cs.ContainerID, rst, w.terminationMessage(pod, rst))
		if hasWait {
			cs.State.Waiting = &v1.ContainerStateWaiting{Reason: wt.reason, Message: wt.message}
			cs.LastTerminationState.Terminated = term
		} else {
			cs.State.Terminated = term
		}
	default:
		reason := "ContainerCreating"
		if hasWait {
			reason = wt.reason
		}
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: reason, Message: wt.message}
	}
	if cs.LastTerminationState.Terminated == nil && len(instances) > 1 && instances[1].State == runtimeapi.ContainerState_CONTAINER_EXITED {
		if prev, err := w.d.cache.containerStatus(ctx, w.d.Runtime, instances[1]); err == nil {
			cs.LastTerminationState.Terminated = terminated(w.d.RuntimeName+"://"+instances[1].Id, prev, w.terminationMessage(pod, prev))
		}
	}
	return cs
}

// terminationMessage is an exited instance's message, read once.
func (w *worker) terminationMessage(pod *v1.Pod, rst *runtimeapi.ContainerStatus) string {
	return w.d.cache.terminationMessage(rst.GetId(), func() (string, bool) { return w.d.files.terminationMessage(pod, rst) })
}

// terminated is an exited instance's state; message is the runtime's
// message with the container's termination message (terminationMessage).
func terminated(containerID string, rst *runtimeapi.ContainerStatus, message string) *v1.ContainerStateTerminated {
	reason := rst.Reason
	if reason == "" {
		reason = "Completed"
		if rst.ExitCode != 0 {
			reason = "Error"
		}
	}
	return &v1.ContainerStateTerminated{
		ExitCode:    rst.ExitCode,
		Reason:      reason,
		Message:     message,
		StartedAt:   metav1.NewTime(time.Unix(0, rst.StartedAt)),
		FinishedAt:  metav1.NewTime(time.Unix(0, rst.FinishedAt)),
		ContainerID: containerID,
	}
}

// podPhase is the kubelet's getPhase for a pod whose sandbox may be running.
func podPhase(pod *v1.Pod, st *v1.PodStatus, initialized bool) v1.PodPhase {
	if !initialized {
		return v1.PodPending
	}
	var running, waiting, stopped, succeeded int
	for _, cs := range st.ContainerStatuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		}
	}
	switch {
	case waiting > 0:
		return v1.PodPending
	case running > 0:
		return v1.PodRunning
	case stopped > 0:
		switch pod.Spec.RestartPolicy {
		case v1.RestartPolicyAlways, v1.RestartPolicyOnFailure:
			if pod.Spec.RestartPolicy == v1.RestartPolicyOnFailure && stopped == succeeded {
				return v1.PodSucceeded
			}
			return v1.PodRunning
		default:
			if stopped == succeeded {
				return v1.PodSucceeded
			}
			return v1.PodFailed
		}
	}
	return v1.PodPending
}

func condition(prev *v1.PodStatus, t v1.PodConditionType, ok bool, falseReason string) v1.PodCondition {
	c := v1.PodCondition{Type: t, Status: v1.ConditionFalse}
	if ok {
		c.Status = v1.ConditionTrue
	} else {
		c.Reason = falseReason
	}
	c.LastTransitionTime = metav1.Now()
	if prev != nil {
		for _, p := range prev.Conditions {
			if p.Type == t && p.Status == c.Status {
				c.LastTransitionTime = p.LastTransitionTime
			}
		}
	}
	return c
}
