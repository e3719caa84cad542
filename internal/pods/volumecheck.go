package pods

import (
	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/crispec"
)

// refuseVolumes keeps a pod with a volume knode cannot make from starting
// (crispec.CheckVolumes): no sandbox, every container waiting in
// CreateContainerConfigError with the reason, and the kubelet's
// FailedMount warning once. The kubelet's volume manager leaves such a pod
// Pending too; a volume is never left out silently.
func (w *worker) refuseVolumes(pod *v1.Pod) bool {
	err := crispec.CheckVolumes(pod)
	if err == nil {
		return false
	}
	msg := err.Error()
	if w.volumeRefusal != msg {
		w.volumeRefusal = msg
		w.d.Events.Event(pod, v1.EventTypeWarning, "FailedMount", msg)
		w.d.log.Warn("pod refused: a volume knode cannot make", "pod", podRef(pod, nil), "err", err)
	}
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			w.waits[c.Name] = waiting{reason: "CreateContainerConfigError", message: msg}
		}
	}
	return true
}

// podMeta identifies what downwardAPI volumes show of the pod's metadata,
// so that a label or annotation change rewrites them at once, as the
// kubelet's volume manager remounts them on a pod update.
func podMeta(pod *v1.Pod) string {
	return crispec.FormatMap(pod.Labels) + "\x00" + crispec.FormatMap(pod.Annotations)
}
