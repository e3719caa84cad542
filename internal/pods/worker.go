package pods

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/podsource"
)

// waiting is why a container is not running, in the kubelet's words
// (CrashLoopBackOff, ErrImagePull, CreateContainerError, ...).
type waiting struct {
	reason, message string
	// disruption, for a pod the node stopped, is the message of its
	// DisruptionTarget condition (preempt.go).
	disruption string
}

// worker drives one pod. Its loop is the only writer of the pod's runtime
// state, so two syncs of one pod never race.
type worker struct {
	d *workerDeps
	// rec is the pod's record; the worker uses its probes and files,
	// which guard themselves, and reaches the rest through d.records.
	rec    *podRecord
	uid    types.UID
	wakeCh chan struct{}

	// lastPod is the last spec the sources gave, kept to terminate the pod
	// with its own grace period after it is removed.
	lastPod   *v1.Pod
	startTime *time.Time
	waits     map[string]waiting
	errDelay  time.Duration
	// reportedRunning is set once the pod first had all containers running.
	reportedRunning bool
	// rejected is set when admission failed; the pod stays Failed.
	rejected *waiting
	// admitted is set once the admission chain took the pod.
	admitted bool
	// redefinedContainers are stopped because their definition changed;
	// their next instance starts whatever the restart policy.
	redefinedContainers map[string]bool
	// notes are per-container remarks for the pod's status message (a
	// restore that fell back to the image).
	notes map[string]string
	// restoreFailed marks containers whose restore failed and that start from their image.
	restoreFailed map[string]bool
	// volumesRefreshed is when the pod's API volumes were last brought up to date.
	volumesRefreshed time.Time
	// volumesMeta is the pod's labels and annotations the volumes were
	// last written with (podMeta).
	volumesMeta string
	// volumeRefusal is the reason the pod's volumes were refused, once told.
	volumeRefusal string
}

func allRunning(st *v1.PodStatus) bool {
	for _, cs := range st.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

func newWorker(d *workerDeps, rec *podRecord) *worker {
	return &worker{d: d, rec: rec, uid: rec.uid, wakeCh: make(chan struct{}, 1), waits: map[string]waiting{},
		notes: map[string]string{}, restoreFailed: map[string]bool{}, redefinedContainers: map[string]bool{}}
}

func (w *worker) wake() {
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
}

func (w *worker) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wakeCh:
		case <-timer.C:
		}
		next, gone := w.sync(ctx)
		if gone && w.d.records.workerDone(w.uid) {
			return
		}
		timer.Reset(next)
	}
}

// sync moves the pod one step toward its spec and returns when to sync
// again; gone is true once the pod is neither desired nor in the runtime.
func (w *worker) sync(ctx context.Context) (next time.Duration, gone bool) {
	pod := w.d.records.desired(w.uid)
	if pod != nil {
		// The pod as its containers run: with the resources allocated to it.
		pod = w.d.allocs.admit(w.rec.alloc, pod)
		w.lastPod = pod
	}
	rp, err := w.list(ctx)
	if err != nil {
		return w.failed(pod, fmt.Errorf("list runtime state: %w", err)), false
	}
	if pod == nil {
		if rp == nil {
			w.cleanupFiles()
			w.d.allocs.forget(w.rec.alloc)
			return 0, true
		}
		w.d.log.Info("terminating pod", "pod", podRef(w.lastPod, rp), "uid", w.uid)
		w.killPod(ctx, rp, w.terminationGrace(rp))
		w.removePod(ctx, rp)
		return 200 * time.Millisecond, false
	}
	if w.startTime == nil {
		now := w.d.Now()
		w.startTime = &now
		if path, ok := MountsDockerSocket(pod); ok {
			w.d.log.Warn("pod mounts the Docker socket by hostPath; dockershim is gone and nothing answers there on a CRI node",
				"pod", podRef(pod, nil), "hostPath", path)
		}
	}
	next, err = w.syncPod(ctx, pod, rp)
	if err != nil {
		return w.failed(pod, err), false
	}
	if _, left := w.activeDeadline(pod); left > 0 && left < next {
		next = left
	}
	w.errDelay = 0
	// Status from the runtime as it is after this sync's actions.
	if rp, err = w.list(ctx); err != nil {
		return w.failed(pod, err), false
	}
	st := w.buildStatus(ctx, pod, rp)
	if !w.reportedRunning && st.Phase == v1.PodRunning && allRunning(st) {
		w.reportedRunning = true
		w.d.Recorder.PodRunning(w.d.Now().Sub(*w.startTime))
	}
	w.d.records.setStatus(w.uid, st)
	return next, false
}

// failed records a sync error and backs off from 1 s to 10 s; the runtime
// may be restarting.
func (w *worker) failed(pod *v1.Pod, err error) time.Duration {
	w.errDelay = min(max(w.errDelay*2, time.Second), 10*time.Second)
	w.d.log.Warn("pod sync failed", "pod", podRef(pod, nil), "uid", w.uid, "retryIn", w.errDelay, "err", err)
	return w.errDelay
}

func (w *worker) list(ctx context.Context) (*runtimePod, error) {
	ctx, cancel := context.WithTimeout(ctx, w.d.RequestTimeout)
	defer cancel()
	snap, err := listRuntime(ctx, w.d.Runtime, w.d.NodeName, &w.uid)
	if err != nil {
		return nil, err
	}
	rp := snap[w.uid]
	if rp != nil && len(rp.sandboxes) == 0 && len(rp.containers) == 0 {
		rp = nil
	}
	return rp, nil
}

func (w *worker) syncPod(ctx context.Context, pod *v1.Pod, rp *runtimePod) (time.Duration, error) {
	rt := w.d.Runtime
	resync := w.d.ResyncPeriod
	if ev, ok := w.d.records.takeEviction(w.uid); ok {
		if w.rejected != nil {
			// Already stopped, or being stopped, for another reason.
			ev.stopped()
		} else {
			// Stopped at once, as the kubelet's hard eviction does, or
			// with the pod's grace period when preempted.
			w.rejected = &ev.waiting
			w.d.Events.Event(pod, v1.EventTypeWarning, ev.reason, ev.message)
			w.d.log.Warn("pod evicted", "pod", podRef(pod, nil), "reason", ev.reason, "message", ev.message)
			if sb := rp.newestSandbox(); sb != nil && sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
				w.killPod(ctx, rp, ev.grace(pod))
			}
			ev.stopped()
			return resync, nil
		}
	}
	if w.rejected != nil {
		if sb := rp.newestSandbox(); sb != nil && sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			w.killPod(ctx, rp, w.terminationGrace(rp))
		}
		return resync, nil
	}
	if w.failPastDeadline(ctx, pod, rp) {
		return resync, nil
	}
	if w.d.refusedUnderPressure(pod, rp) {
		w.rejected = &waiting{reason: "Evicted", message: "The node had condition: [MemoryPressure]. "}
		w.d.Events.Event(pod, v1.EventTypeWarning, "Evicted", w.rejected.message)
		w.d.log.Warn("pod refused under memory pressure", "pod", podRef(pod, nil))
		return resync, nil
	}
	if err := w.d.Devices.Allocate(ctx, pod); err != nil {
		var rejection interface{ Reason() string }
		// A pod being terminated may be about to free what this one needs:
		// wait for it rather than reject (the kubelet rejects at once).
		if errors.As(err, &rejection) && !w.d.records.terminating() {
			w.rejected = &waiting{reason: rejection.Reason(), message: err.Error()}
			w.d.Events.Event(pod, v1.EventTypeWarning, rejection.Reason(), err.Error())
			w.d.log.Error("pod admission failed", "pod", podRef(pod, nil), "reason", rejection.Reason(), "err", err)
			if rp != nil {
				w.killPod(ctx, rp, w.terminationGrace(rp))
			}
			return resync, nil
		}
		w.waits[""] = waiting{reason: "WaitingForDevices", message: err.Error()}
		return 2 * time.Second, nil
	}
	if w.waits[""].reason == "WaitingForDevices" {
		delete(w.waits, "")
	}
	if !w.admitPod(pod, rp) {
		return resync, nil
	}
	if w.refuseVolumes(pod) {
		return resync, nil
	}
	sb := rp.newestSandbox()
	if sb != nil && sb.Annotations[podsource.HashAnnotation] != pod.Annotations[podsource.HashAnnotation] {
		w.d.log.Info("pod spec changed, replacing pod", "pod", podRef(pod, nil))
		w.killPod(ctx, rp, w.terminationGrace(rp))
		w.removePod(ctx, rp)
		return 0, nil
	}
	if sb != nil && sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		if phase := w.terminalPhase(ctx, pod, rp, sb); phase != "" {
			return resync, nil
		}
	}
	if sb == nil || sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		attempt := uint32(0)
		if sb != nil {
			attempt = sb.GetMetadata().GetAttempt() + 1
			w.d.log.Info("pod sandbox is not ready, creating a new one", "pod", podRef(pod, nil), "oldSandbox", sb.Id)
			w.killPod(ctx, rp, w.terminationGrace(rp))
		}
		id, handler, err := w.createSandbox(ctx, pod, attempt)
		if errors.Is(err, errNoRuntimeHandler) || errors.Is(err, errNoSandboxConfig) {
			// The pod's status says why; the class may appear, the
			// runtime may change.
			return 10 * time.Second, nil
		}
		if err != nil {
			return 0, err
		}
		w.d.records.wakeRelist()
		// Continue with the new sandbox: it has no containers yet.
		sb = &runtimeapi.PodSandbox{Id: id, State: runtimeapi.PodSandboxState_SANDBOX_READY,
			Metadata: &runtimeapi.PodSandboxMetadata{Attempt: attempt}, RuntimeHandler: handler}
		rp = &runtimePod{sandboxes: []*runtimeapi.PodSandbox{sb}, containers: rp.allContainers()}
	}
	// The config the sandbox was made with, on its own handler.
	sbConfig, err := w.d.files.sandboxConfig(pod, sb.GetMetadata().GetAttempt(), sb.GetRuntimeHandler())
	if err != nil {
		return 0, err
	}
	ips, err := w.d.cache.sandboxIPsFor(ctx, rt, sb)
	if err != nil {
		return 0, err
	}
	podIP := ""
	if len(ips) > 0 {
		podIP = ips[0]
	}
	// ConfigMap, Secret and projected volumes follow their objects, once per
	// resync period as with the kubelet; the first write is at container creation.
	// A label or annotation change is written at once.
	if now, meta := w.d.Now(), podMeta(pod); w.volumesRefreshed.IsZero() {
		w.volumesRefreshed, w.volumesMeta = now, meta
	} else if now.Sub(w.volumesRefreshed) >= resync || meta != w.volumesMeta {
		w.d.files.refreshAPIVolumes(w.rec.files.volumes, pod)
		w.volumesRefreshed, w.volumesMeta = now, meta
	}
	s := &podSync{w: w, pod: pod, rp: rp, sb: sb, sbConfig: sbConfig, podIP: podIP, next: resync}
	s.syncEphemeral(ctx)
	s.syncResize(ctx)
	initDone, initFailed := s.syncInit(ctx)
	defer s.syncProbes()
	switch {
	case initFailed:
		w.d.log.Info("init container failed and restartPolicy is Never: pod failed", "pod", podRef(pod, nil))
		w.killPod(ctx, rp, w.terminationGrace(rp))
	case initDone:
		s.syncApps(ctx)
		if s.terminal {
			// The kubelet stops a finished pod's sandbox (and its sidecars).
			w.killPod(ctx, rp, w.terminationGrace(rp))
		}
	}
	return s.next, nil
}

func (rp *runtimePod) allContainers() []*runtimeapi.Container {
	if rp == nil {
		return nil
	}
	return rp.containers
}

// errNoRuntimeHandler is a pod whose runtimeClassName resolves to no
// handler (yet): no sandbox is made.
var errNoRuntimeHandler = errors.New("the pod's RuntimeClass cannot be resolved")

// errNoSandboxConfig is a pod whose sandbox config cannot be made (yet):
// no sandbox is made.
var errNoSandboxConfig = errors.New("the pod's sandbox config cannot be made")

func (w *worker) createSandbox(ctx context.Context, pod *v1.Pod, attempt uint32) (id, handler string, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.d.RequestTimeout)
	defer cancel()
	handler, err = w.d.runtimeHandler(ctx, pod)
	if err != nil {
		// As the kubelet: no sandbox, tried again at the next sync.
		w.waits[""] = waiting{reason: "CreatePodSandboxError", message: fmt.Sprintf("Failed to create sandbox for pod %q: %v", crispec.PodDesc(pod), err)}
		w.d.Events.Event(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: "+err.Error())
		return "", "", fmt.Errorf("%w: %w", errNoRuntimeHandler, err)
	}
	cfg, err := w.d.files.sandboxConfig(pod, attempt, handler)
	if err != nil {
		// As the kubelet (a user namespace the handler cannot make, a
		// host name it refuses): no sandbox, tried again at the next sync.
		w.waits[""] = waiting{reason: "CreatePodSandboxError", message: fmt.Sprintf("Failed to generate sandbox config for pod %q: %v", crispec.PodDesc(pod), err)}
		w.d.Events.Event(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: "+err.Error())
		return "", "", fmt.Errorf("%w: %w", errNoSandboxConfig, err)
	}
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", "", fmt.Errorf("create pod log directory: %w", err)
	}
	if err := w.d.Cgroups.EnsurePod(pod); err != nil {
		w.waits[""] = waiting{reason: "CreatePodSandboxError", message: err.Error()}
		return "", "", err
	}
	w.d.publishDNSEvents(pod)
	id, err = w.d.Runtime.RunPodSandbox(ctx, cfg, handler)
	w.d.Recorder.SandboxStarted(err)
	if err != nil {
		w.waits[""] = waiting{reason: "CreatePodSandboxError", message: err.Error()}
		return "", "", fmt.Errorf("run pod sandbox: %w", err)
	}
	delete(w.waits, "")
	w.d.log.Info("pod sandbox started", "pod", podRef(pod, nil), "sandbox", id, "attempt", attempt)
	return id, handler, nil
}

// terminalPhase reports Succeeded or Failed once no container of the pod
// will run again under its restart policy, or "" while it may.
func (w *worker) terminalPhase(ctx context.Context, pod *v1.Pod, rp *runtimePod, sb *runtimeapi.PodSandbox) v1.PodPhase {
	if pod.Spec.RestartPolicy == v1.RestartPolicyAlways || sb == nil {
		return ""
	}
	failed := false
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		latest := first(rp.instances(c.Name, sb.Id))
		if latest == nil || latest.State != runtimeapi.ContainerState_CONTAINER_EXITED || podsource.IsSidecar(c) {
			continue
		}
		st, err := w.d.cache.containerStatus(ctx, w.d.Runtime, latest)
		if err == nil && st.ExitCode != 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
			return v1.PodFailed
		}
	}
	for i := range pod.Spec.Containers {
		latest := first(rp.instances(pod.Spec.Containers[i].Name, sb.Id))
		if latest == nil || latest.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			return ""
		}
		st, err := w.d.cache.containerStatus(ctx, w.d.Runtime, latest)
		if err != nil || shouldRestart(pod.Spec.RestartPolicy, st.ExitCode) {
			return ""
		}
		if st.ExitCode != 0 {
			failed = true
		}
	}
	if failed {
		return v1.PodFailed
	}
	return v1.PodSucceeded
}

func podRef(pod *v1.Pod, rp *runtimePod) string {
	if pod != nil {
		return pod.Namespace + "/" + pod.Name
	}
	if sb := rp.newestSandbox(); sb != nil {
		return sb.GetMetadata().GetNamespace() + "/" + sb.GetMetadata().GetName()
	}
	return "<unknown>"
}
