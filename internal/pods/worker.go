package pods

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/podsource"
	"knode.io/knode/internal/safefs"
	"knode.io/knode/internal/subpath"
)

// waiting is why a container is not running, in the kubelet's words
// (CrashLoopBackOff, ErrImagePull, CreateContainerError, ...).
type waiting struct {
	reason, message string
}

// worker drives one pod. Its loop is the only writer of the pod's runtime
// state, so two syncs of one pod never race.
type worker struct {
	m      *Manager
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
	// notes are per-container remarks for the pod's status message (a
	// restore that fell back to the image).
	notes map[string]string
	// restoreFailed marks containers whose restore failed and that start from their image.
	restoreFailed map[string]bool
	// volumesRefreshed is when the pod's API volumes were last brought up to date.
	volumesRefreshed time.Time
}

func allRunning(st *v1.PodStatus) bool {
	for _, cs := range st.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

func newWorker(m *Manager, uid types.UID) *worker {
	return &worker{m: m, uid: uid, wakeCh: make(chan struct{}, 1), waits: map[string]waiting{},
		notes: map[string]string{}, restoreFailed: map[string]bool{}}
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
		if gone && w.m.workerDone(w.uid) {
			return
		}
		timer.Reset(next)
	}
}

// sync moves the pod one step toward its spec and returns when to sync
// again; gone is true once the pod is neither desired nor in the runtime.
func (w *worker) sync(ctx context.Context) (next time.Duration, gone bool) {
	pod := w.m.desired(w.uid)
	if pod != nil {
		w.lastPod = pod
	}
	rp, err := w.list(ctx)
	if err != nil {
		return w.failed(pod, fmt.Errorf("list runtime state: %w", err)), false
	}
	if pod == nil {
		if rp == nil {
			w.cleanupFiles()
			return 0, true
		}
		w.m.log.Info("terminating pod", "pod", podRef(w.lastPod, rp), "uid", w.uid)
		w.killPod(ctx, rp, w.terminationGrace(rp))
		w.removePod(ctx, rp)
		return 200 * time.Millisecond, false
	}
	if w.startTime == nil {
		now := w.m.opts.Now()
		w.startTime = &now
		if path, ok := MountsDockerSocket(pod); ok {
			w.m.log.Warn("pod mounts the Docker socket by hostPath; dockershim is gone and nothing answers there on a CRI node",
				"pod", podRef(pod, nil), "hostPath", path)
		}
	}
	next, err = w.syncPod(ctx, pod, rp)
	if err != nil {
		return w.failed(pod, err), false
	}
	w.errDelay = 0
	// Status from the runtime as it is after this sync's actions.
	if rp, err = w.list(ctx); err != nil {
		return w.failed(pod, err), false
	}
	st := w.buildStatus(ctx, pod, rp)
	if !w.reportedRunning && st.Phase == v1.PodRunning && allRunning(st) {
		w.reportedRunning = true
		w.m.opts.Recorder.PodRunning(w.m.opts.Now().Sub(*w.startTime))
	}
	w.m.setStatus(w.uid, st)
	return next, false
}

// failed records a sync error and backs off from 1 s to 10 s; the runtime
// may be restarting.
func (w *worker) failed(pod *v1.Pod, err error) time.Duration {
	w.errDelay = min(max(w.errDelay*2, time.Second), 10*time.Second)
	w.m.log.Warn("pod sync failed", "pod", podRef(pod, nil), "uid", w.uid, "retryIn", w.errDelay, "err", err)
	return w.errDelay
}

func (w *worker) list(ctx context.Context) (*runtimePod, error) {
	ctx, cancel := context.WithTimeout(ctx, w.m.opts.RequestTimeout)
	defer cancel()
	snap, err := listRuntime(ctx, w.m.opts.Runtime, w.m.opts.NodeName, &w.uid)
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
	rt := w.m.opts.Runtime
	resync := w.m.opts.ResyncPeriod
	if w.rejected == nil {
		if ev, ok := w.m.takeEviction(w.uid); ok {
			// Stopped at once, as the kubelet's hard eviction does.
			w.rejected = &ev
			w.m.opts.Events.Event(pod, v1.EventTypeWarning, ev.reason, ev.message)
			w.m.log.Warn("pod evicted", "pod", podRef(pod, nil), "message", ev.message)
			if sb := rp.newestSandbox(); sb != nil && sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
				w.killPod(ctx, rp, 0)
			}
			return resync, nil
		}
	}
	if w.rejected != nil {
		if sb := rp.newestSandbox(); sb != nil && sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			w.killPod(ctx, rp, w.terminationGrace(rp))
		}
		return resync, nil
	}
	if w.m.refusedUnderPressure(pod, rp) {
		w.rejected = &waiting{reason: "Evicted", message: "The node had condition: [MemoryPressure]. "}
		w.m.opts.Events.Event(pod, v1.EventTypeWarning, "Evicted", w.rejected.message)
		w.m.log.Warn("pod refused under memory pressure", "pod", podRef(pod, nil))
		return resync, nil
	}
	if err := w.m.opts.Devices.Allocate(ctx, pod); err != nil {
		var rejection interface{ Reason() string }
		// A pod being terminated may be about to free what this one needs:
		// wait for it rather than reject (the kubelet rejects at once).
		if errors.As(err, &rejection) && !w.m.terminating() {
			w.rejected = &waiting{reason: rejection.Reason(), message: err.Error()}
			w.m.opts.Events.Event(pod, v1.EventTypeWarning, rejection.Reason(), err.Error())
			w.m.log.Error("pod admission failed", "pod", podRef(pod, nil), "reason", rejection.Reason(), "err", err)
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
	sb := rp.newestSandbox()
	if sb != nil && sb.Annotations[podsource.HashAnnotation] != pod.Annotations[podsource.HashAnnotation] {
		w.m.log.Info("pod spec changed, replacing pod", "pod", podRef(pod, nil))
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
			w.m.log.Info("pod sandbox is not ready, creating a new one", "pod", podRef(pod, nil), "oldSandbox", sb.Id)
			w.killPod(ctx, rp, w.terminationGrace(rp))
		}
		id, err := w.createSandbox(ctx, pod, attempt)
		if err != nil {
			return 0, err
		}
		w.m.wakeRelist()
		// Continue with the new sandbox: it has no containers yet.
		sb = &runtimeapi.PodSandbox{Id: id, State: runtimeapi.PodSandboxState_SANDBOX_READY,
			Metadata: &runtimeapi.PodSandboxMetadata{Attempt: attempt}}
		rp = &runtimePod{sandboxes: []*runtimeapi.PodSandbox{sb}, containers: rp.allContainers()}
	}
	sbConfig, err := w.m.sandboxConfig(pod, sb.GetMetadata().GetAttempt())
	if err != nil {
		return 0, err
	}
	ips, err := w.m.cache.sandboxIPsFor(ctx, rt, sb)
	if err != nil {
		return 0, err
	}
	podIP := ""
	if len(ips) > 0 {
		podIP = ips[0]
	}
	// ConfigMap, Secret and projected volumes follow their objects, once per
	// resync period as with the kubelet; the first write is at container creation.
	if now := w.m.opts.Now(); w.volumesRefreshed.IsZero() {
		w.volumesRefreshed = now
	} else if now.Sub(w.volumesRefreshed) >= resync {
		w.m.refreshAPIVolumes(pod)
		w.volumesRefreshed = now
	}
	s := &podSync{w: w, pod: pod, rp: rp, sb: sb, sbConfig: sbConfig, podIP: podIP, next: resync}
	initDone, initFailed := s.syncInit(ctx)
	defer s.syncProbes()
	switch {
	case initFailed:
		w.m.log.Info("init container failed and restartPolicy is Never: pod failed", "pod", podRef(pod, nil))
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

func (w *worker) createSandbox(ctx context.Context, pod *v1.Pod, attempt uint32) (string, error) {
	cfg, err := w.m.sandboxConfig(pod, attempt)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", fmt.Errorf("create pod log directory: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.m.opts.RequestTimeout)
	defer cancel()
	id, err := w.m.opts.Runtime.RunPodSandbox(ctx, cfg, "")
	w.m.opts.Recorder.SandboxStarted(err)
	if err != nil {
		w.waits[""] = waiting{reason: "CreatePodSandboxError", message: err.Error()}
		return "", fmt.Errorf("run pod sandbox: %w", err)
	}
	delete(w.waits, "")
	w.m.log.Info("pod sandbox started", "pod", podRef(pod, nil), "sandbox", id, "attempt", attempt)
	return id, nil
}

// podSync is one pass over a pod whose sandbox is ready.
type podSync struct {
	w        *worker
	pod      *v1.Pod
	rp       *runtimePod
	sb       *runtimeapi.PodSandbox
	sbConfig *runtimeapi.PodSandboxConfig
	podIP    string
	next     time.Duration
	terminal bool
}

func (s *podSync) requeue(d time.Duration) {
	s.next = min(s.next, max(d, 10*time.Millisecond))
}

// syncInit runs init containers one at a time, in order. Restartable
// (sidecar) init containers count as done once running and keep running.
func (s *podSync) syncInit(ctx context.Context) (done, failed bool) {
	for i := range s.pod.Spec.InitContainers {
		c := &s.pod.Spec.InitContainers[i]
		sidecar := isSidecar(c)
		latest := first(s.rp.instances(c.Name, s.sb.Id))
		if latest == nil {
			s.start(ctx, c, true)
			return false, false
		}
		switch latest.State {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			if !sidecar {
				return false, false
			}
			s.killIfUnhealthy(ctx, c, latest)
			// The next init container waits for the sidecar to have started.
			if !s.w.m.probes.started(c, latest.Id) {
				return false, false
			}
			continue
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			st, err := s.w.m.cache.containerStatus(ctx, s.w.m.opts.Runtime, latest)
			if err != nil {
				s.requeue(time.Second)
				return false, false
			}
			if !sidecar && st.ExitCode == 0 {
				continue
			}
			if !sidecar && s.pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				return false, true
			}
			s.restartWithBackoff(ctx, c, true, st)
			return false, false
		default:
			s.requeue(time.Second)
			return false, false
		}
	}
	return true, false
}

// syncApps starts app containers that have not run and restarts exited ones
// as the restart policy says, with crash-loop back-off.
func (s *podSync) syncApps(ctx context.Context) {
	settled := 0
	for i := range s.pod.Spec.Containers {
		c := &s.pod.Spec.Containers[i]
		instances := s.rp.instances(c.Name, s.sb.Id)
		s.removeOld(ctx, instances)
		latest := first(instances)
		if latest == nil {
			s.start(ctx, c, false)
			continue
		}
		switch latest.State {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			delete(s.w.waits, c.Name)
			s.killIfUnhealthy(ctx, c, latest)
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			st, err := s.w.m.cache.containerStatus(ctx, s.w.m.opts.Runtime, latest)
			if err != nil {
				s.requeue(time.Second)
				continue
			}
			if !shouldRestart(s.pod.Spec.RestartPolicy, st.ExitCode) {
				delete(s.w.waits, c.Name)
				settled++
				continue
			}
			s.restartWithBackoff(ctx, c, false, st)
		default:
			s.requeue(time.Second)
		}
	}
	s.terminal = settled == len(s.pod.Spec.Containers)
}

// syncProbes gives the pod's running containers (apps and sidecars) their
// probe workers, and takes them from containers that stopped.
func (s *podSync) syncProbes() {
	var list []running
	add := func(c *v1.Container) {
		if latest := first(s.rp.instances(c.Name, s.sb.Id)); latest != nil && latest.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			list = append(list, running{c: c, id: latest.Id, startedAt: time.Unix(0, latest.CreatedAt)})
		}
	}
	for i := range s.pod.Spec.InitContainers {
		if isSidecar(&s.pod.Spec.InitContainers[i]) {
			add(&s.pod.Spec.InitContainers[i])
		}
	}
	for i := range s.pod.Spec.Containers {
		add(&s.pod.Spec.Containers[i])
	}
	podIP := s.podIP
	if s.pod.Spec.HostNetwork {
		podIP = s.w.m.opts.HostIP
	}
	s.w.m.probes.sync(s.pod, list, podIP, s.w.wake)
}

// killIfUnhealthy stops a container whose liveness probe failed, or whose
// startup probe gave up; the restart policy then decides, as with the kubelet.
func (s *podSync) killIfUnhealthy(ctx context.Context, c *v1.Container, ct *runtimeapi.Container) {
	kind, p := s.w.m.probes.unhealthy(c, ct.Id)
	if kind == "" {
		return
	}
	grace := s.w.terminationGrace(s.rp)
	if p.TerminationGracePeriodSeconds != nil {
		grace = *p.TerminationGracePeriodSeconds
	}
	s.normal("Killing", fmt.Sprintf("Container %s failed %s probe, will be restarted", c.Name, strings.ToLower(string(kind))))
	s.w.m.log.Info("container failed its probe; stopping it", "pod", podRef(s.pod, nil), "container", c.Name, "probe", kind)
	s.w.m.stopContainer(ctx, s.pod, ct, grace, s.podIP)
	s.w.m.wakeRelist()
	s.requeue(time.Second)
}

// removeOld keeps the newest two instances of a container (the running one
// and the last that exited, for `logs --previous`), as the kubelet's GC does.
func (s *podSync) removeOld(ctx context.Context, instances []*runtimeapi.Container) {
	for _, old := range instances[min(2, len(instances)):] {
		if old.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, s.w.m.opts.RequestTimeout)
		if err := s.w.m.opts.Runtime.RemoveContainer(cctx, old.Id); err != nil {
			s.w.m.log.Debug("remove old container instance", "container", old.Id, "err", err)
		} else {
			s.w.m.unlinkContainerLog(old.Id)
		}
		cancel()
	}
}

// containerType is the kubelet's label value for started_containers_total.
func containerType(c *v1.Container, isInit bool) string {
	if isInit {
		return "init_container"
	}
	return "container"
}

func shouldRestart(policy v1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case v1.RestartPolicyAlways:
		return true
	case v1.RestartPolicyOnFailure:
		return exitCode != 0
	default:
		return false
	}
}

func isSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

func first(cs []*runtimeapi.Container) *runtimeapi.Container {
	if len(cs) == 0 {
		return nil
	}
	return cs[0]
}

func (s *podSync) backoffKey(c *v1.Container) string {
	return string(s.pod.UID) + "_" + c.Name
}

// restartWithBackoff is the kubelet's crash-loop rule: the first restart is
// immediate, then each waits 10 s, 20 s, ... up to 5 min after the exit.
func (s *podSync) restartWithBackoff(ctx context.Context, c *v1.Container, isInit bool, st *runtimeapi.ContainerStatus) {
	bo := s.w.m.backoff
	key := s.backoffKey(c)
	finished := time.Unix(0, st.FinishedAt)
	if bo.IsInBackOffSince(key, finished) {
		delay := bo.Get(key)
		s.w.waits[c.Name] = waiting{
			reason:  "CrashLoopBackOff",
			message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.Name, s.pod.Name, s.pod.Namespace, s.pod.UID),
		}
		s.warning("BackOff", fmt.Sprintf("Back-off restarting failed container %s in pod %s_%s(%s)", c.Name, s.pod.Name, s.pod.Namespace, s.pod.UID))
		s.requeue(delay - s.w.m.opts.Now().Sub(finished))
		return
	}
	bo.Next(key, finished)
	s.start(ctx, c, isInit)
}

// start pulls the image as the pull policy says, then creates and starts
// one new instance of c. Failures become the container's waiting reason.
func (s *podSync) start(ctx context.Context, c *v1.Container, isInit bool) {
	w := s.w
	restarts := 0
	if prev := first(s.rp.instances(c.Name, "")); prev != nil {
		restarts = restartCount(prev) + 1
	}
	// A container whose image is an archive restores every time; one restored
	// by annotation restores only its first instance, restarts start fresh.
	archive, fallback := "", false
	if (restarts == 0 || strings.HasPrefix(c.Image, "/")) && !w.restoreFailed[c.Name] {
		var err error
		archive, fallback, err = w.m.opts.Restores.Source(s.pod, c)
		if err != nil {
			s.restoreFailed(c, archive, fallback, err)
			return
		}
	}
	if archive == "" {
		if err := s.ensureImage(ctx, c); err != nil {
			return
		}
	}
	cfg, err := w.m.containerConfig(s.pod, c, restarts, isInit, s.podIP)
	if err != nil {
		w.waits[c.Name] = waiting{reason: "CreateContainerConfigError", message: err.Error()}
		s.warning("Failed", "Error: "+err.Error())
		s.requeue(10 * time.Second)
		return
	}
	if archive != "" {
		// The runtime restores a container whose image is a checkpoint archive.
		cfg.Image = &runtimeapi.ImageSpec{Image: archive, UserSpecifiedImage: archive}
		w.m.log.Info("restoring container from a checkpoint", "pod", podRef(s.pod, nil), "container", c.Name, "archive", archive)
	}
	rt := w.m.opts.Runtime
	cctx, cancel := context.WithTimeout(ctx, w.m.opts.RequestTimeout)
	defer cancel()
	restoreStart := time.Now()
	id, err := rt.CreateContainer(cctx, s.sb.Id, cfg, s.sbConfig)
	if err != nil && archive != "" {
		s.restoreFailed(c, archive, fallback, w.m.opts.Restores.CreateFailed(archive, err))
		return
	}
	if err != nil {
		w.m.opts.Recorder.ContainerStarted(containerType(c, isInit), err)
		w.waits[c.Name] = waiting{reason: "CreateContainerError", message: err.Error()}
		s.warning("Failed", "Error: "+err.Error())
		w.m.log.Warn("create container failed", "pod", podRef(s.pod, nil), "container", c.Name, "err", err)
		s.dropSubPaths(c)
		s.requeue(10 * time.Second)
		return
	}
	s.normal("Created", "Created container: "+c.Name)
	if err := w.m.opts.Devices.PreStart(ctx, s.pod, c); err != nil {
		w.waits[c.Name] = waiting{reason: "RunContainerError", message: err.Error()}
		s.warning("Failed", "Error: "+err.Error())
		_ = rt.RemoveContainer(cctx, id)
		s.dropSubPaths(c)
		s.requeue(10 * time.Second)
		return
	}
	err = rt.StartContainer(cctx, id)
	w.m.opts.Recorder.ContainerStarted(containerType(c, isInit), err)
	if err != nil {
		w.waits[c.Name] = waiting{reason: "RunContainerError", message: err.Error()}
		s.warning("Failed", "Error: "+err.Error())
		w.m.log.Warn("start container failed", "pod", podRef(s.pod, nil), "container", c.Name, "err", err)
		// A container that never started is removed so the next try is clean.
		_ = rt.RemoveContainer(cctx, id)
		s.dropSubPaths(c)
		s.requeue(10 * time.Second)
		return
	}
	s.normal("Started", "Started container "+c.Name)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		// As the kubelet: the hook runs before anything else starts; if it
		// fails the container is stopped and its restart policy decides.
		if err := w.m.runHook(ctx, c.Lifecycle.PostStart, c, id, s.podIP); err != nil {
			w.waits[c.Name] = waiting{reason: "PostStartHookError", message: err.Error()}
			s.warning("FailedPostStartHook", fmt.Sprintf("PostStartHook failed: %v", err))
			w.m.log.Warn("postStart hook failed; stopping the container", "pod", podRef(s.pod, nil), "container", c.Name, "err", err)
			ct := &runtimeapi.Container{Id: id, State: runtimeapi.ContainerState_CONTAINER_RUNNING, Metadata: &runtimeapi.ContainerMetadata{Name: c.Name}}
			w.m.stopContainer(ctx, s.pod, ct, w.terminationGrace(s.rp), s.podIP)
			w.m.wakeRelist()
			s.requeue(time.Second)
			return
		}
	}
	delete(w.waits, c.Name)
	if archive != "" {
		w.m.opts.Recorder.RestoreDone("success", time.Since(restoreStart))
		w.m.annotate(w.uid, restoredFromAnnotation, w.m.opts.Restores.Describe(archive))
	}
	w.m.linkContainerLog(s.pod, c.Name, id, filepath.Join(s.sbConfig.LogDirectory, cfg.LogPath))
	w.m.log.Info("container started", "pod", podRef(s.pod, nil), "container", c.Name, "id", id, "restartCount", restarts)
	w.m.wakeRelist()
	s.requeue(time.Second)
}

// dropSubPaths unmounts and removes the subPath binds made for a container
// that was not created or was removed before it ran.
func (s *podSync) dropSubPaths(c *v1.Container) {
	if err := subpath.CleanContainer(PodDir(s.w.m.opts.RootDir, s.pod), c.Name); err != nil {
		s.w.m.log.Warn("remove subPath mounts", "pod", podRef(s.pod, nil), "container", c.Name, "err", err)
	}
}

// restoreFailed either fails the pod with the restore's reason or, when the
// pod asked for it, lets the container start from its image and says so.
func (s *podSync) restoreFailed(c *v1.Container, archive string, fallback bool, err error) {
	w := s.w
	reason := "RestoreFailed"
	var r interface{ Reason() string }
	if errors.As(err, &r) {
		reason = r.Reason()
	}
	w.m.opts.Recorder.RestoreDone(reason, 0)
	if fallback {
		w.restoreFailed[c.Name] = true
		w.notes[c.Name] = fmt.Sprintf("container %s: restore failed (%s: %v); started fresh from its image", c.Name, reason, err)
		w.m.log.Warn("restore failed; starting from the image as the pod asks", "pod", podRef(s.pod, nil), "container", c.Name, "reason", reason, "err", err)
		s.requeue(0)
		return
	}
	// The next sync sees the rejection and stops the pod's sandbox.
	w.rejected = &waiting{reason: reason, message: err.Error()}
	w.m.log.Error("restore failed; the pod fails", "pod", podRef(s.pod, nil), "container", c.Name, "archive", archive, "reason", reason, "err", err)
	s.requeue(0)
}

func (s *podSync) ensureImage(ctx context.Context, c *v1.Container) error {
	w := s.w
	images := w.m.opts.Images
	spec := &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image}
	ictx, cancel := context.WithTimeout(ctx, w.m.opts.RequestTimeout)
	defer cancel()
	resp, err := images.ImageStatus(ictx, spec, false)
	if err != nil {
		w.waits[c.Name] = waiting{reason: "ErrImageInspect", message: fmt.Sprintf("failed to inspect image %q: %v", c.Image, err)}
		s.requeue(10 * time.Second)
		return err
	}
	present := resp.GetImage() != nil
	switch {
	case present && c.ImagePullPolicy != v1.PullAlways:
		s.normal("Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
		return nil
	case !present && c.ImagePullPolicy == v1.PullNever:
		w.waits[c.Name] = waiting{reason: "ErrImageNeverPull", message: fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)}
		s.warning("ErrImageNeverPull", w.waits[c.Name].message)
		s.requeue(10 * time.Second)
		return errors.New("image not present")
	}
	key := "pull_" + string(s.pod.UID) + "_" + c.Image
	bo := w.m.backoff
	if bo.IsInBackOffSinceUpdate(key, w.m.opts.Now()) {
		w.waits[c.Name] = waiting{reason: "ImagePullBackOff", message: fmt.Sprintf("Back-off pulling image %q", c.Image)}
		s.normal("BackOff", w.waits[c.Name].message)
		s.requeue(bo.Get(key))
		return errors.New("image pull back-off")
	}
	pctx, pcancel := context.WithTimeout(ctx, max(w.m.opts.RequestTimeout, 5*time.Minute))
	defer pcancel()
	s.normal("Pulling", fmt.Sprintf("Pulling image %q", c.Image))
	pullStart := time.Now()
	if _, err := images.PullImage(pctx, spec, nil, s.sbConfig); err != nil {
		bo.Next(key, w.m.opts.Now())
		w.waits[c.Name] = waiting{reason: "ErrImagePull", message: fmt.Sprintf("failed to pull image %q: %v", c.Image, err)}
		s.warning("Failed", fmt.Sprintf("Failed to pull image %q: %v", c.Image, err))
		w.m.log.Warn("image pull failed", "pod", podRef(s.pod, nil), "container", c.Name, "image", c.Image, "err", err)
		s.requeue(bo.Get(key))
		return err
	}
	bo.Reset(key)
	s.normal("Pulled", fmt.Sprintf("Successfully pulled image %q in %s", c.Image, time.Since(pullStart).Round(time.Millisecond)))
	return nil
}

func (s *podSync) normal(reason, message string) {
	s.w.m.opts.Events.Event(s.pod, v1.EventTypeNormal, reason, message)
}

func (s *podSync) warning(reason, message string) {
	s.w.m.opts.Events.Event(s.pod, v1.EventTypeWarning, reason, message)
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
		if latest == nil || latest.State != runtimeapi.ContainerState_CONTAINER_EXITED || isSidecar(c) {
			continue
		}
		st, err := w.m.cache.containerStatus(ctx, w.m.opts.Runtime, latest)
		if err == nil && st.ExitCode != 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
			return v1.PodFailed
		}
	}
	for i := range pod.Spec.Containers {
		latest := first(rp.instances(pod.Spec.Containers[i].Name, sb.Id))
		if latest == nil || latest.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			return ""
		}
		st, err := w.m.cache.containerStatus(ctx, w.m.opts.Runtime, latest)
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

// terminationGrace is the pod's grace period, or for a pod no source knows
// any more, the one recorded on its containers.
func (w *worker) terminationGrace(rp *runtimePod) int64 {
	if g, ok := w.m.graceFor(w.uid); ok {
		return g
	}
	if w.lastPod != nil {
		return gracePeriod(w.lastPod)
	}
	for _, c := range rp.allContainers() {
		if g, err := strconv.ParseInt(c.Annotations[annotationPodTerminationGrace], 10, 64); err == nil {
			return g
		}
	}
	return v1.DefaultTerminationGracePeriodSeconds
}

// killPod stops every running container at once with the grace period
// (SIGTERM, then SIGKILL when it ends), then stops the sandboxes.
func (w *worker) killPod(ctx context.Context, rp *runtimePod, grace int64) {
	rt := w.m.opts.Runtime
	podIP := ""
	if st := w.m.statusOf(w.uid); st != nil {
		podIP = st.PodIP
	}
	var wg sync.WaitGroup
	for _, c := range rp.allContainers() {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING && c.State != runtimeapi.ContainerState_CONTAINER_CREATED {
			continue
		}
		if w.lastPod != nil {
			w.m.opts.Events.Event(w.lastPod, v1.EventTypeNormal, "Killing", "Stopping container "+c.GetMetadata().GetName())
		}
		wg.Add(1)
		go func(c *runtimeapi.Container) {
			defer wg.Done()
			w.m.stopContainer(ctx, w.lastPod, c, grace, podIP)
		}(c)
	}
	wg.Wait()
	for _, sb := range rp.sandboxes {
		if sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, w.m.opts.RequestTimeout)
		if err := rt.StopPodSandbox(sctx, sb.Id); err != nil {
			w.m.log.Warn("stop pod sandbox failed", "sandbox", sb.Id, "err", err)
		}
		cancel()
	}
	w.m.wakeRelist()
}

// removePod removes the (stopped) containers and sandboxes.
func (w *worker) removePod(ctx context.Context, rp *runtimePod) {
	rt := w.m.opts.Runtime
	for _, c := range rp.allContainers() {
		cctx, cancel := context.WithTimeout(ctx, w.m.opts.RequestTimeout)
		if err := rt.RemoveContainer(cctx, c.Id); err != nil {
			w.m.log.Warn("remove container failed", "container", c.Id, "err", err)
		} else {
			w.m.unlinkContainerLog(c.Id)
		}
		cancel()
	}
	// The containers' subPath binds go with them.
	podDir := PodDir(w.m.opts.RootDir, &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: w.uid}})
	if err := subpath.CleanPod(podDir); err != nil {
		w.m.log.Warn("remove subPath mounts", "pod", podRef(w.lastPod, rp), "err", err)
	}
	for _, sb := range rp.sandboxes {
		sctx, cancel := context.WithTimeout(ctx, w.m.opts.RequestTimeout)
		if err := rt.RemovePodSandbox(sctx, sb.Id); err != nil {
			w.m.log.Warn("remove pod sandbox failed", "sandbox", sb.Id, "err", err)
		} else {
			w.m.log.Info("pod sandbox removed", "sandbox", sb.Id)
		}
		cancel()
	}
	w.m.wakeRelist()
}

// cleanupFiles removes the pod's volume and log directories once it is gone.
// Every mount below the pod's directory (tmpfs volumes, subPath binds of a
// volume's or a hostPath's directories) is detached first, and the removal
// itself never crosses a mount point nor follows a link, so nothing outside
// the pod's own directories is touched even if a detach failed.
func (w *worker) cleanupFiles() {
	if w.lastPod == nil {
		return
	}
	podDir := PodDir(w.m.opts.RootDir, w.lastPod)
	if err := unmountVolumes(podDir); err != nil {
		w.m.log.Warn("unmount pod volumes", "dir", podDir, "err", err)
	}
	for _, dir := range []string{podDir, LogDir(w.m.opts.PodLogsDir, w.lastPod)} {
		if err := removeBeneath(dir); err != nil {
			w.m.log.Warn("remove pod directory", "dir", dir, "err", err)
		}
	}
}

// removeBeneath removes dir (a path knode built) and its tree, working
// beneath its opened parent with safefs.
func removeBeneath(dir string) error {
	parent, err := safefs.Open(filepath.Dir(dir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer parent.Close()
	return parent.RemoveAll(filepath.Base(dir))
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
