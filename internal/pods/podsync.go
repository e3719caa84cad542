package pods

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/podsource"
)

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
		sidecar := podsource.IsSidecar(c)
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
			if !s.w.rec.probes.started(c, latest.Id) {
				return false, false
			}
			continue
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			st, err := s.w.d.cache.containerStatus(ctx, s.w.d.Runtime, latest)
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
			if s.redefined(ctx, c, latest) {
				continue
			}
			s.killIfUnhealthy(ctx, c, latest)
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			if s.restartRedefined(ctx, c, latest) {
				continue
			}
			st, err := s.w.d.cache.containerStatus(ctx, s.w.d.Runtime, latest)
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
		if podsource.IsSidecar(&s.pod.Spec.InitContainers[i]) {
			add(&s.pod.Spec.InitContainers[i])
		}
	}
	for i := range s.pod.Spec.Containers {
		add(&s.pod.Spec.Containers[i])
	}
	podIP := s.podIP
	if s.pod.Spec.HostNetwork {
		podIP = s.w.d.node.HostIP
	}
	s.w.rec.probes.sync(s.pod, list, podIP, s.w.wake)
}

// killIfUnhealthy stops a container whose liveness probe failed, or whose
// startup probe gave up; the restart policy then decides, as with the kubelet.
func (s *podSync) killIfUnhealthy(ctx context.Context, c *v1.Container, ct *runtimeapi.Container) {
	kind, p := s.w.rec.probes.unhealthy(c, ct.Id)
	if kind == "" {
		return
	}
	grace := s.w.terminationGrace(s.rp)
	if p.TerminationGracePeriodSeconds != nil {
		grace = *p.TerminationGracePeriodSeconds
	}
	s.normal("Killing", fmt.Sprintf("Container %s failed %s probe, will be restarted", c.Name, strings.ToLower(string(kind))))
	s.w.d.log.Info("container failed its probe; stopping it", "pod", podRef(s.pod, nil), "container", c.Name, "probe", kind)
	s.w.d.hooks.stopContainer(ctx, s.pod, ct, grace, s.podIP)
	s.w.d.records.wakeRelist()
	s.requeue(time.Second)
}

// removeOld keeps the newest two instances of a container (the running one
// and the last that exited, for `logs --previous`), as the kubelet's GC does.
func (s *podSync) removeOld(ctx context.Context, instances []*runtimeapi.Container) {
	for _, old := range instances[min(2, len(instances)):] {
		if old.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, s.w.d.RequestTimeout)
		if err := s.w.d.Runtime.RemoveContainer(cctx, old.Id); err != nil {
			s.w.d.log.Debug("remove old container instance", "container", old.Id, "err", err)
		} else {
			s.w.d.files.unlinkContainerLog(old.Id)
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
	bo := s.w.d.backoff
	key := s.backoffKey(c)
	finished := time.Unix(0, st.FinishedAt)
	if bo.IsInBackOffSince(key, finished) {
		delay := bo.Get(key)
		s.w.waits[c.Name] = waiting{
			reason:  "CrashLoopBackOff",
			message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.Name, s.pod.Name, s.pod.Namespace, s.pod.UID),
		}
		s.warning("BackOff", fmt.Sprintf("Back-off restarting failed container %s in pod %s_%s(%s)", c.Name, s.pod.Name, s.pod.Namespace, s.pod.UID))
		s.requeue(delay - s.w.d.Now().Sub(finished))
		return
	}
	bo.Next(key, finished)
	s.start(ctx, c, isInit)
}
