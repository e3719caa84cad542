package pods

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	podadmission "knode.io/knode/internal/admission"
)

// admit runs the admission chain for a pod about to get its first sandbox,
// against the pods admitted before it that have not finished, one pod at
// a time (admitMu), as the kubelet's HandlePodAdditions admits pods in
// turn. An admitted pod is counted from then on; a refused one never.
func (m *Manager) admit(uid types.UID, pod *v1.Pod) (ok bool, reason, message string) {
	if m.opts.Admission == nil {
		return true, "", ""
	}
	m.admitMu.Lock()
	defer m.admitMu.Unlock()
	ok, reason, message = m.opts.Admission.Admit(&podadmission.Attrs{Pod: pod, OtherPods: m.admittedOthers(uid)})
	if ok {
		m.markAdmitted(uid)
	}
	return ok, reason, message
}

// admittedOthers are the admitted pods other than uid that have not
// finished, those whose deletion is being carried out included (their
// containers run until stopped, as the kubelet's active pods), each with
// the resources allocated to it (a resize that waits does not count), as
// the kubelet's allocated pods.
func (m *Manager) admittedOthers(uid types.UID) []*v1.Pod {
	m.mu.RLock()
	var others []*v1.Pod
	var allocs []*podAllocation
	for ouid, r := range m.records {
		p := r.desired()
		if p == nil && r.worker != nil {
			// Being stopped: what it holds is not free before it stops.
			p = r.stopping
		}
		if ouid == uid || p == nil || !r.admitted {
			continue
		}
		if r.status != nil && (r.status.Phase == v1.PodSucceeded || r.status.Phase == v1.PodFailed) {
			continue
		}
		others = append(others, p)
		allocs = append(allocs, r.alloc)
	}
	m.mu.RUnlock()
	for i, p := range others {
		others[i] = m.d.allocs.view(allocs[i], p)
	}
	return others
}

// resizeFits runs the admission chain for a pod's resized spec against
// the other admitted pods, as the kubelet's canResizePod does: a refusal
// defers the resize.
func (m *Manager) resizeFits(pod *v1.Pod) (ok bool, message string) {
	if m.opts.Admission == nil {
		return true, ""
	}
	m.admitMu.Lock()
	defer m.admitMu.Unlock()
	ok, _, message = m.opts.Admission.Admit(&podadmission.Attrs{Pod: pod, OtherPods: m.admittedOthers(pod.UID)})
	return ok, message
}

// markAdmitted counts a pod among the admitted ones: after admission, or
// when knode finds it already running (adopted after a restart), which the
// kubelet would re-admit; knode keeps a running pod rather than refuse it.
func (m *Manager) markAdmitted(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recordLocked(uid).admitted = true
}

// admitPod is the worker's side of admission: the first time a pod is
// seen without a sandbox it goes through the chain; a refused pod is
// Failed for good with the handler's reason and message, and any devices
// it was given are freed.
func (w *worker) admitPod(pod *v1.Pod, rp *runtimePod) bool {
	if w.admitted {
		return true
	}
	if rp.newestSandbox() != nil {
		w.admitted = true
		w.d.records.markAdmitted(w.uid)
		w.d.allocs.admitted(w.rec.alloc, pod)
		// An adopted pod's cgroup is brought to its spec's limits again
		// and counted in its QoS class's.
		if err := w.d.Cgroups.EnsurePod(pod); err != nil {
			w.d.log.Warn("pod cgroup", "pod", podRef(pod, nil), "err", err)
		}
		return true
	}
	ok, reason, message := w.d.records.admit(w.uid, pod)
	if ok {
		w.admitted = true
		w.d.allocs.admitted(w.rec.alloc, pod)
		return true
	}
	w.rejected = &waiting{reason: reason, message: message}
	w.d.Devices.Release(w.uid)
	w.d.Events.Event(pod, v1.EventTypeWarning, reason, message)
	w.d.log.Warn("pod admission refused", "pod", podRef(pod, nil), "reason", reason, "message", message)
	return false
}
