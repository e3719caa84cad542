package pods

import (
	"context"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (m *Manager) wakeRelist() {
	select {
	case m.relistNow <- struct{}{}:
	default:
	}
}

// relistLoop is knode's PLEG: it lists sandboxes and containers, wakes the
// worker of every pod whose runtime state changed, and starts workers that
// remove runtime pods no source declares.
func (m *Manager) relistLoop(ctx context.Context) {
	ticker := time.NewTicker(m.opts.RelistPeriod)
	defer ticker.Stop()
	gc := time.NewTicker(time.Minute)
	defer gc.Stop()
	prev := map[types.UID]string{}
	for {
		prev = m.relist(ctx, prev)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-m.relistNow:
		case <-gc.C:
			m.d.backoff.GC()
		}
	}
}

func (m *Manager) relist(ctx context.Context, prev map[types.UID]string) map[types.UID]string {
	ctx, cancel := context.WithTimeout(ctx, m.opts.RequestTimeout)
	defer cancel()
	started := m.opts.Now()
	snap, err := listRuntime(ctx, m.opts.Runtime, m.opts.NodeName, nil)
	m.mu.Lock()
	m.relistErr = err
	m.lastRelistAttempt = started
	if err == nil {
		m.lastRelist = started
		m.runtimePods = snap
	}
	m.mu.Unlock()
	if err != nil {
		return prev
	}
	m.d.cache.retain(snap)
	next := make(map[types.UID]string, len(snap))
	for uid, rp := range snap {
		next[uid] = rp.fingerprint()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sourcesReady := m.allSourcesReadyLocked()
	if sourcesReady && !m.devicesRetained {
		// Once every source has spoken, allocations of pods that are neither
		// declared nor running (deleted while knode was down) are freed.
		keep := map[types.UID]bool{}
		for uid := range m.records {
			if m.declaredLocked(uid) {
				keep[uid] = true
			}
		}
		for uid := range snap {
			keep[uid] = true
		}
		m.devicesRetained = true
		go m.opts.Devices.Retain(keep)
		go m.d.files.retainUserNamespaces(keep)
		go m.d.allocs.dropRestored()
		// Under the lock: a pod declared meanwhile could have its new
		// cgroup taken for an orphan's.
		m.removeOrphanedCgroups(keep)
	}
	for uid, fp := range next {
		if prev[uid] == fp {
			continue
		}
		if sourcesReady || m.declaredLocked(uid) {
			m.ensureWorkerLocked(uid)
		}
	}
	for uid := range prev {
		if _, ok := next[uid]; !ok {
			if w := m.workerLocked(uid); w != nil {
				w.wake()
			}
		}
	}
	// Orphans seen before all sources reported are handled once they have.
	if sourcesReady {
		for uid := range next {
			if m.workerLocked(uid) == nil {
				m.ensureWorkerLocked(uid)
			}
		}
	}
	return next
}

// watchEvents wakes a pod's worker as soon as the runtime reports a change.
func (m *Manager) watchEvents(ctx context.Context, es EventSource) {
	for ctx.Err() == nil {
		ch := make(chan *runtimeapi.ContainerEventResponse, 64)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ev := range ch {
				uid := types.UID(ev.GetPodSandboxStatus().GetMetadata().GetUid())
				m.mu.RLock()
				w := m.workerLocked(uid)
				m.mu.RUnlock()
				if w != nil {
					w.wake()
				} else {
					m.wakeRelist()
				}
			}
		}()
		err := es.GetContainerEvents(ctx, ch, nil)
		close(ch)
		<-done
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.Unimplemented {
			m.log.Info("the runtime does not stream container events; relisting alone notices changes", "relistPeriod", m.opts.RelistPeriod)
			return
		}
		m.log.Debug("container event stream ended; relisting covers the gap", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// RunningCounts is the number of pods with a ready sandbox and of knode's
// containers per state, as of the last relist.
func (m *Manager) RunningCounts() (int, map[string]int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	pods := 0
	containers := map[string]int{}
	for _, rp := range m.runtimePods {
		if sb := rp.newestSandbox(); sb != nil && sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			pods++
		}
		for _, c := range rp.containers {
			containers[containerStateName(c.State)]++
		}
	}
	return pods, containers
}

func containerStateName(s runtimeapi.ContainerState) string {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return "created"
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return "running"
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return "exited"
	default:
		return "unknown"
	}
}

// RunningPods is the runtime's view as of the last relist: one pod per
// ready sandbox with its running containers, as the kubelet's /runningpods/.
func (m *Manager) RunningPods() []*v1.Pod {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*v1.Pod
	for uid, rp := range m.runtimePods {
		sb := rp.newestSandbox()
		if sb == nil || sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			continue
		}
		pod := &v1.Pod{}
		pod.Name, pod.Namespace, pod.UID = sb.GetMetadata().GetName(), sb.GetMetadata().GetNamespace(), uid
		for _, c := range rp.containers {
			if c.PodSandboxId != sb.Id || c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				continue
			}
			pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{Name: c.GetMetadata().GetName(), Image: c.GetImage().GetImage()})
		}
		out = append(out, pod)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out
}
