package pods

import (
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/podsupport"
)

// ephemeralContainer is the pod's ephemeral container of that name, or nil.
func ephemeralContainer(pod *v1.Pod, name string) *v1.EphemeralContainer {
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return &pod.Spec.EphemeralContainers[i]
		}
	}
	return nil
}

// asContainer is an ephemeral container as a container: the API keeps the
// same fields, so the one container builder serves both.
func asContainer(ec *v1.EphemeralContainer) *v1.Container {
	return (*v1.Container)(&ec.EphemeralContainerCommon)
}

// syncEphemeral starts each ephemeral container (`kubectl debug`) that has
// never run in the pod. As with the kubelet they start before init
// containers, so a pod stuck initializing can be debugged, and they are
// never restarted: one that exited stays terminated.
func (s *podSync) syncEphemeral(ctx context.Context) {
	for i := range s.pod.Spec.EphemeralContainers {
		ec := &s.pod.Spec.EphemeralContainers[i]
		if len(s.rp.instances(ec.Name, "")) > 0 {
			continue
		}
		if err := checkEphemeralFields(ec, i); err != nil {
			// Added after the pod's admission: its fields are checked here.
			s.w.waits[ec.Name] = waiting{reason: refusalReason(err), message: err.Error()}
			continue
		}
		s.start(ctx, asContainer(ec), false)
	}
}

// shareTargetPID points an ephemeral container with a targetContainerName
// at its target's process namespace; the target must be running, or the
// kubelet's CreateContainerConfigError message is returned.
func (s *podSync) shareTargetPID(name string, cfg *runtimeapi.ContainerConfig) error {
	ec := ephemeralContainer(s.pod, name)
	if ec == nil || ec.TargetContainerName == "" {
		return nil
	}
	target := first(s.rp.instances(ec.TargetContainerName, s.sb.Id))
	if target == nil || target.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("unable to find target container %v", ec.TargetContainerName)
	}
	crispec.ShareTargetPID(cfg, target.Id)
	return nil
}

// ephemeralStatuses are the pod's ephemeral containers' statuses. They
// have no probes: never ready, and no started flag, as the kubelet reports
// them; they count for neither the phase nor readiness.
func (w *worker) ephemeralStatuses(ctx context.Context, pod *v1.Pod, rp *runtimePod) []v1.ContainerStatus {
	var out []v1.ContainerStatus
	for i := range pod.Spec.EphemeralContainers {
		cs := w.containerStatus(ctx, pod, rp, asContainer(&pod.Spec.EphemeralContainers[i]), "ContainerCreating")
		cs.Ready, cs.Started = false, nil
		out = append(out, cs)
	}
	return out
}

// checkEphemeralFields refuses an ephemeral container that sets a field
// knode does not implement (the podsupport table), as admission refuses
// such a pod: an ephemeral container arrives after the pod was admitted.
func checkEphemeralFields(ec *v1.EphemeralContainer, index int) error {
	err := podsupport.Check(&v1.Pod{Spec: v1.PodSpec{EphemeralContainers: []v1.EphemeralContainer{*ec}}})
	if err == nil {
		return nil
	}
	// The check saw the container alone: give it its place in the pod.
	msg := strings.ReplaceAll(err.Error(), "spec.ephemeralContainers[0]", fmt.Sprintf("spec.ephemeralContainers[%d]", index))
	return podsupport.NewRefusal(refusalReason(err), msg)
}

// refusalReason is a refusal's status reason.
func refusalReason(err error) string {
	var r interface{ Reason() string }
	if errors.As(err, &r) {
		return r.Reason()
	}
	return "CreateContainerConfigError"
}
