package pods

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/podsource"
)

// The kubelet's active deadline reason and message (pkg/kubelet/active_deadline.go).
const (
	reasonDeadlineExceeded  = "DeadlineExceeded"
	messageDeadlineExceeded = "Pod was active on the node longer than the specified deadline"
)

// activeDeadline reports whether the pod has been active longer than its
// activeDeadlineSeconds, counted from its start time (the API object's
// status.startTime when it has one, else when knode first saw it), and
// otherwise how long it has left (0: no deadline).
func (w *worker) activeDeadline(pod *v1.Pod) (exceeded bool, left time.Duration) {
	if pod.Spec.ActiveDeadlineSeconds == nil {
		return false, 0
	}
	var start time.Time
	switch {
	case pod.Status.StartTime != nil && !pod.Status.StartTime.IsZero():
		start = pod.Status.StartTime.Time
	case w.startTime != nil:
		start = *w.startTime
	default:
		return false, 0
	}
	left = start.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second).Sub(w.d.Now())
	if left <= 0 {
		return true, 0
	}
	return false, left
}

// failPastDeadline ends a pod past its active deadline as the kubelet
// does: Failed, reason DeadlineExceeded, its containers stopped with the
// pod's grace period (by the rejected pod's path of the next syncs).
func (w *worker) failPastDeadline(ctx context.Context, pod *v1.Pod, rp *runtimePod) bool {
	if exceeded, _ := w.activeDeadline(pod); !exceeded {
		return false
	}
	w.rejected = &waiting{reason: reasonDeadlineExceeded, message: messageDeadlineExceeded}
	w.d.Events.Event(pod, v1.EventTypeNormal, reasonDeadlineExceeded, messageDeadlineExceeded)
	w.d.log.Info("pod passed its active deadline; stopping it", "pod", podRef(pod, nil), "activeDeadlineSeconds", *pod.Spec.ActiveDeadlineSeconds)
	if sb := rp.newestSandbox(); sb != nil && sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
		w.killPod(ctx, rp, w.terminationGrace(rp))
	}
	return true
}

// redefined stops a running container whose definition (name and image,
// the fields an API pod may change) is no longer the spec's, as the
// kubelet's containerChanged: it is started again from the new spec
// whatever the restart policy says.
func (s *podSync) redefined(ctx context.Context, c *v1.Container, ct *runtimeapi.Container) bool {
	if crispec.HashMatches(c, ct.Annotations[crispec.AnnotationContainerHash]) {
		return false
	}
	s.normal("Killing", fmt.Sprintf("Container %s definition changed, will be restarted", c.Name))
	s.w.d.log.Info("container definition changed; restarting it", "pod", podRef(s.pod, nil), "container", c.Name, "image", c.Image)
	s.w.redefinedContainers[c.Name] = true
	s.w.d.hooks.stopContainer(ctx, s.pod, ct, s.w.terminationGrace(s.rp), s.podIP)
	s.w.d.records.wakeRelist()
	s.requeue(0)
	return true
}

// restartRedefined starts the new definition of a container knode stopped
// because its definition changed, whatever the restart policy.
func (s *podSync) restartRedefined(ctx context.Context, c *v1.Container, ct *runtimeapi.Container) bool {
	if !s.w.redefinedContainers[c.Name] || crispec.HashMatches(c, ct.Annotations[crispec.AnnotationContainerHash]) {
		return false
	}
	delete(s.w.redefinedContainers, c.Name)
	s.start(ctx, c, false)
	return true
}

// readinessGates keeps the API object's own conditions in the status and
// holds the Ready condition False, with the kubelet's reason and
// messages, until every readiness gate's condition is True.
func readinessGates(pod *v1.Pod, st *v1.PodStatus, prev *v1.PodStatus) {
	for _, c := range pod.Status.Conditions {
		if !podsource.IsKubeletCondition(c.Type) {
			st.Conditions = append(st.Conditions, c)
		}
	}
	var ready *v1.PodCondition
	for i := range st.Conditions {
		if st.Conditions[i].Type == v1.PodReady {
			ready = &st.Conditions[i]
		}
	}
	if ready == nil || ready.Status != v1.ConditionTrue || len(pod.Spec.ReadinessGates) == 0 {
		return
	}
	var unready []string
	for _, g := range pod.Spec.ReadinessGates {
		var found *v1.PodCondition
		for i := range pod.Status.Conditions {
			if pod.Status.Conditions[i].Type == g.ConditionType {
				found = &pod.Status.Conditions[i]
			}
		}
		switch {
		case found == nil:
			unready = append(unready, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", string(g.ConditionType)))
		case found.Status != v1.ConditionTrue:
			unready = append(unready, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", string(g.ConditionType), found.Status))
		}
	}
	if len(unready) == 0 {
		return
	}
	*ready = v1.PodCondition{Type: v1.PodReady, Status: v1.ConditionFalse, Reason: "ReadinessGatesNotReady",
		Message: strings.Join(unready, ", "), LastTransitionTime: metav1.Now()}
	if prev != nil {
		for _, p := range prev.Conditions {
			if p.Type == v1.PodReady && p.Status == v1.ConditionFalse {
				ready.LastTransitionTime = p.LastTransitionTime
			}
		}
	}
}
