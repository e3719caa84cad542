package pods

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/flowcontrol"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/apivolume"
	"knode.io/knode/internal/podpath"
	"knode.io/knode/internal/prober"
	"knode.io/knode/internal/staticpod"
)

// Options configure a Manager.
type Options struct {
	Runtime Runtime
	Images  Images
	// RuntimeName prefixes container IDs in status ("containerd://<id>").
	RuntimeName string
	RootDir     string
	PodLogsDir  string
	CgroupRoot  string
	ResolvConf  string
	HostIP      string
	// NodeName labels every sandbox and container knode makes; knode sees
	// only those with its own name, so agents can share a runtime.
	NodeName string
	// NodeCPUs and NodeMemoryBytes stand in for a missing limit in the downward API.
	NodeCPUs        int
	NodeMemoryBytes int64
	// RelistPeriod is how often the runtime is listed to notice changes (the kubelet's PLEG: 1 s).
	RelistPeriod time.Duration
	// ResyncPeriod is how often every pod is synced even without changes.
	ResyncPeriod time.Duration
	// RequestTimeout bounds each CRI call (long-running stops excepted).
	RequestTimeout time.Duration
	Log            *slog.Logger
	// BackoffInitial and BackoffMax are the crash-loop back-off (10 s doubling to 5 min).
	BackoffInitial, BackoffMax time.Duration
	Now                        func() time.Time
	// Recorder receives pod and container start events for metrics; may be nil.
	Recorder Recorder
	// Pressure, when set, refuses new BestEffort pods under memory pressure,
	// as the kubelet's admission does.
	Pressure interface{ MemoryPressure() (bool, error) }
	// Prober runs container probes; nil: knode's own, exec probes through Runtime.
	Prober Prober
	// Events publishes the kubelet's pod events (Pulled, Created, Started,
	// Killing, BackOff, ...), in cluster mode to the API server; may be nil.
	Events EventRecorder
	// Devices allocates device-plugin resources; may be nil.
	Devices Devices
	// APIObjects reads ConfigMaps, Secrets and service account tokens for
	// API pods' volumes (cluster mode); may be nil.
	APIObjects APIObjects
	// OnRemoved is told when a pod that no source declares any more is
	// gone from the runtime (cluster mode then deletes the API object).
	OnRemoved func(uid types.UID)
	// Restores picks checkpoint archives to restore containers from; may be nil.
	Restores Restorer
	// ContainerLogsDir gets the kubelet's /var/log/containers symlinks
	// (<pod>_<ns>_<container>-<id>.log), for log agents; empty disables them.
	ContainerLogsDir string
}

// Devices is the device manager as the pod workers use it.
type Devices interface {
	// Allocate admits the pod's device requests. An error with a Reason()
	// method fails the pod's admission for good (UnexpectedAdmissionError);
	// any other error is retried.
	Allocate(ctx context.Context, pod *v1.Pod) error
	// Apply merges the plugins' answers into a container's CRI config.
	Apply(pod *v1.Pod, c *v1.Container, cfg *runtimeapi.ContainerConfig)
	// PreStart runs the plugins' PreStartContainer before each start.
	PreStart(ctx context.Context, pod *v1.Pod, c *v1.Container) error
	// Release frees a removed pod's devices.
	Release(uid types.UID)
	// Retain frees the devices of pods not in keep.
	Retain(keep map[types.UID]bool)
}

// Restorer decides which containers start from a checkpoint archive.
type Restorer interface {
	// Source returns the archive to restore c from ("" for none) and whether
	// the pod falls back to the image when the restore fails. An error (with
	// a Reason() method) means the archive cannot be used.
	Source(pod *v1.Pod, c *v1.Container) (archive string, fallbackToImage bool, err error)
	// CreateFailed explains the runtime's refusal to create from an archive,
	// as an error with a Reason() method.
	CreateFailed(archive string, err error) error
	// Describe names an archive (and its digest) for the pod's annotation.
	Describe(archive string) string
}

type noRestores struct{}

func (noRestores) Source(*v1.Pod, *v1.Container) (string, bool, error) { return "", false, nil }
func (noRestores) CreateFailed(_ string, err error) error              { return err }
func (noRestores) Describe(archive string) string                      { return archive }

type noDevices struct{}

func (noDevices) Allocate(context.Context, *v1.Pod) error                   { return nil }
func (noDevices) Apply(*v1.Pod, *v1.Container, *runtimeapi.ContainerConfig) {}
func (noDevices) PreStart(context.Context, *v1.Pod, *v1.Container) error    { return nil }
func (noDevices) Release(types.UID)                                         {}
func (noDevices) Retain(map[types.UID]bool)                                 {}

// Recorder is told about starts, for the kubelet's started_* and
// pod_start_duration metrics.
type Recorder interface {
	SandboxStarted(err error)
	ContainerStarted(containerType string, err error)
	PodRunning(sinceFirstSeen time.Duration)
	// RestoreDone counts a restore: result is "success" or the failure's reason.
	RestoreDone(result string, d time.Duration)
}

// EventRecorder publishes an event about a pod; eventType is Normal or Warning.
type EventRecorder interface {
	Event(pod *v1.Pod, eventType, reason, message string)
}

type nopEvents struct{}

func (nopEvents) Event(*v1.Pod, string, string, string) {}

type nopRecorder struct{}

func (nopRecorder) SandboxStarted(error)              {}
func (nopRecorder) ContainerStarted(string, error)    {}
func (nopRecorder) PodRunning(time.Duration)          {}
func (nopRecorder) RestoreDone(string, time.Duration) {}

// Manager owns the desired pods, one worker per pod, and their status.
type Manager struct {
	opts    Options
	log     *slog.Logger
	backoff *flowcontrol.Backoff

	mu           sync.RWMutex
	sources      map[string]map[types.UID]*v1.Pod // source -> uid -> pod
	sourcesReady map[string]bool
	expected     []string // sources that must report before orphans are removed
	workers      map[types.UID]*worker
	statuses     map[types.UID]*v1.PodStatus
	// annotations are what knode adds to a pod it serves (restored-from).
	annotations map[types.UID]map[string]string
	// probes runs the containers' startup, liveness and readiness probes.
	probes *probes
	// evictions are pods the eviction manager chose, for their workers to stop.
	evictions map[types.UID]waiting
	// apiVols writes the pods' ConfigMap, Secret, projected and downwardAPI
	// volumes and remembers them between refreshes.
	apiVols *apivolume.Volumes
	// deletionGrace is the grace period an API deletion asked for.
	deletionGrace map[types.UID]int64
	// finished are pods that have terminated but whose source still lists them.
	lastRelist        time.Time
	lastRelistAttempt time.Time
	relistErr         error
	// runtimePods is the last relist's view, for /runningpods and metrics.
	runtimePods map[types.UID]*runtimePod

	// version changes whenever Pods() would answer differently, so readers
	// can cache what they derive from it.
	version atomic.Uint64
	// changed is closed (and replaced) at each version change.
	changed chan struct{}

	relistNow       chan struct{}
	devicesRetained bool
	wg              sync.WaitGroup
	ctx             context.Context
	cache           *statusCache
}

// NewManager returns a manager that waits for each of sources to report once
// before it removes runtime pods no source declares.
func NewManager(opts Options, sources ...string) *Manager {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.RelistPeriod == 0 {
		opts.RelistPeriod = time.Second
	}
	if opts.ResyncPeriod == 0 {
		opts.ResyncPeriod = time.Minute
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 2 * time.Minute
	}
	if opts.BackoffInitial == 0 {
		opts.BackoffInitial = 10 * time.Second
	}
	if opts.BackoffMax == 0 {
		opts.BackoffMax = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Recorder == nil {
		opts.Recorder = nopRecorder{}
	}
	if opts.Events == nil {
		opts.Events = nopEvents{}
	}
	if opts.Prober == nil {
		opts.Prober = prober.New(opts.Runtime)
	}
	if opts.Devices == nil {
		opts.Devices = noDevices{}
	}
	if opts.Restores == nil {
		opts.Restores = noRestores{}
	}
	if opts.RuntimeName == "" {
		opts.RuntimeName = "cri"
	}
	m := &Manager{
		opts:          opts,
		log:           opts.Log,
		backoff:       flowcontrol.NewBackOff(opts.BackoffInitial, opts.BackoffMax),
		sources:       map[string]map[types.UID]*v1.Pod{},
		sourcesReady:  map[string]bool{},
		expected:      sources,
		workers:       map[types.UID]*worker{},
		statuses:      map[types.UID]*v1.PodStatus{},
		annotations:   map[types.UID]map[string]string{},
		evictions:     map[types.UID]waiting{},
		deletionGrace: map[types.UID]int64{},
		relistNow:     make(chan struct{}, 1),
		changed:       make(chan struct{}),
		cache:         newStatusCache(),
		probes:        newProbes(opts.Prober, opts.Events, opts.Log, opts.Now()),
	}
	m.apiVols = m.newAPIVolumes()
	return m
}

// Run relists the runtime and drives workers until ctx ends, then waits for
// the workers to return. Pods keep running when knode stops, as with the kubelet.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.ctx = ctx
	for uid := range m.allDesiredLocked() {
		m.ensureWorkerLocked(uid)
	}
	m.mu.Unlock()
	if es, ok := m.opts.Runtime.(EventSource); ok {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.watchEvents(ctx, es)
		}()
	}
	m.relistLoop(ctx)
	m.wg.Wait()
}

// SetPods replaces everything one source declares. Pods that disappear are
// terminated; new ones start; the first call marks the source ready.
//
// A pod with a deletionTimestamp (an API pod being deleted) is no longer
// desired: it is stopped with its deletionGracePeriodSeconds.
func (m *Manager) SetPods(source string, pods []*v1.Pod) {
	next := make(map[types.UID]*v1.Pod, len(pods))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range pods {
		// UID, namespace and names become host paths: check them before any
		// worker builds one (the API server never validates a UID's form).
		if err := podpath.Check(p); err != nil {
			m.log.Error("pod refused: a field knode builds host paths from is invalid", "source", source, "pod", p.Namespace+"/"+p.Name, "err", err)
			continue
		}
		markSource(p, source)
		if p.DeletionTimestamp != nil {
			if p.DeletionGracePeriodSeconds != nil {
				m.deletionGrace[p.UID] = *p.DeletionGracePeriodSeconds
			}
			continue
		}
		next[p.UID] = p
	}
	prev := m.sources[source]
	m.sources[source] = next
	m.sourcesReady[source] = true
	m.podsChangedLocked()
	for uid := range next {
		m.ensureWorkerLocked(uid)
	}
	for uid := range prev {
		if _, still := next[uid]; !still {
			if w := m.workers[uid]; w != nil {
				w.wake()
			}
		}
	}
	m.wakeRelist()
}

// markSource records on pod the source it came from, overwriting what the
// pod says, as the kubelet annotates every pod with its real source before
// anything reads it. An API pod's author controls its annotations: one
// that claimed kubernetes.io/config.source "file" would pass for a static
// pod, which skips the ContainerCheckpoint gate for restores and is never
// evicted, and one that named a manifest in knode.io/config.file would let
// POST /pods/{ns}/{name}/stop move that static pod's manifest aside. Only
// the file source sets the manifest's path; it is dropped from the others.
// The pods given to SetPods are the caller's copies.
func markSource(pod *v1.Pod, source string) {
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[configSourceAnnotation] = source
	if source != staticpod.SourceFile {
		delete(pod.Annotations, staticpod.ConfigFileAnnotation)
	}
}

// Pods returns copies of the pods knode manages with their live status,
// sorted by namespace and name.
func (m *Manager) Pods() []*v1.Pod {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*v1.Pod, 0, len(m.workers))
	for uid, pod := range m.allDesiredLocked() {
		out = append(out, m.withStatusLocked(uid, pod))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// GetPod finds a managed pod by namespace and name.
func (m *Manager) GetPod(namespace, name string) (*v1.Pod, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for uid, pod := range m.allDesiredLocked() {
		if pod.Namespace == namespace && pod.Name == name {
			return m.withStatusLocked(uid, pod), true
		}
	}
	return nil, false
}

func (m *Manager) withStatusLocked(uid types.UID, pod *v1.Pod) *v1.Pod {
	p := pod.DeepCopy()
	for k, v := range m.annotations[uid] {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
	if st := m.statuses[uid]; st != nil {
		p.Status = *st.DeepCopy()
	} else {
		p.Status = v1.PodStatus{Phase: v1.PodPending}
	}
	return p
}

// SyncLoopHealth reports when the relist loop last ran and last succeeded,
// and its last error: a stale attempt means the loop is stuck, an error that
// the runtime is unreachable.
func (m *Manager) SyncLoopHealth() (lastAttempt, lastSuccess time.Time, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.lastRelistAttempt, m.lastRelist, m.relistErr
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

func (m *Manager) allDesiredLocked() map[types.UID]*v1.Pod {
	all := map[types.UID]*v1.Pod{}
	for _, pods := range m.sources {
		for uid, p := range pods {
			if _, dup := all[uid]; !dup {
				all[uid] = p
			}
		}
	}
	return all
}

func (m *Manager) desired(uid types.UID) *v1.Pod {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, pods := range m.sources {
		if p, ok := pods[uid]; ok {
			return p
		}
	}
	return nil
}

func (m *Manager) allSourcesReadyLocked() bool {
	for _, s := range m.expected {
		if !m.sourcesReady[s] {
			return false
		}
	}
	return true
}

// ensureWorkerLocked starts a worker for uid unless one runs.
func (m *Manager) ensureWorkerLocked(uid types.UID) {
	if m.ctx == nil {
		return // Run starts them
	}
	if w := m.workers[uid]; w != nil {
		w.wake()
		return
	}
	w := newWorker(m, uid)
	m.workers[uid] = w
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		w.run(m.ctx)
	}()
}

// workerDone is called by a worker whose pod is gone from source and runtime.
// It returns false (and the worker goes on) if the pod came back meanwhile.
func (m *Manager) workerDone(uid types.UID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, back := m.allDesiredLocked()[uid]; back {
		return false
	}
	delete(m.workers, uid)
	delete(m.statuses, uid)
	delete(m.annotations, uid)
	m.apiVols.Forget(uid)
	delete(m.evictions, uid)
	m.probes.forget(uid)
	delete(m.deletionGrace, uid)
	m.podsChangedLocked()
	m.opts.Devices.Release(uid)
	if m.opts.OnRemoved != nil {
		go m.opts.OnRemoved(uid)
	}
	return true
}

func (m *Manager) setStatus(uid types.UID, st *v1.PodStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.statuses[uid]; old == nil || !equality.Semantic.DeepEqual(old, st) {
		m.podsChangedLocked()
	}
	m.statuses[uid] = st
}

// DockershimDependentPods counts managed pods that mount the Docker socket.
func (m *Manager) DockershimDependentPods() int {
	n := 0
	for _, p := range m.Pods() {
		if _, ok := MountsDockerSocket(p); ok {
			n++
		}
	}
	return n
}

func (m *Manager) annotate(uid types.UID, key, value string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.annotations[uid] == nil {
		m.annotations[uid] = map[string]string{}
	}
	m.annotations[uid][key] = value
	m.podsChangedLocked()
}

// PodsVersion changes whenever the answer of Pods changes.
func (m *Manager) PodsVersion() uint64 { return m.version.Load() }

// PodsChanged returns a channel closed at the next change of Pods' answer,
// so a status reporter writes a change at once instead of at its next poll.
func (m *Manager) PodsChanged() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *Manager) podsChangedLocked() {
	m.version.Add(1)
	close(m.changed)
	m.changed = make(chan struct{})
}

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
			m.backoff.GC()
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
	m.cache.retain(snap)
	next := make(map[types.UID]string, len(snap))
	for uid, rp := range snap {
		next[uid] = rp.fingerprint()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sourcesReady := m.allSourcesReadyLocked()
	desired := m.allDesiredLocked()
	if sourcesReady && !m.devicesRetained {
		// Once every source has spoken, allocations of pods that are neither
		// declared nor running (deleted while knode was down) are freed.
		keep := map[types.UID]bool{}
		for uid := range desired {
			keep[uid] = true
		}
		for uid := range snap {
			keep[uid] = true
		}
		m.devicesRetained = true
		go m.opts.Devices.Retain(keep)
	}
	for uid, fp := range next {
		if prev[uid] == fp {
			continue
		}
		if _, ok := desired[uid]; ok || sourcesReady {
			m.ensureWorkerLocked(uid)
		}
	}
	for uid := range prev {
		if _, ok := next[uid]; !ok {
			if w := m.workers[uid]; w != nil {
				w.wake()
			}
		}
	}
	// Orphans seen before all sources reported are handled once they have.
	if sourcesReady {
		for uid := range next {
			if _, ok := m.workers[uid]; !ok {
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
				w := m.workers[uid]
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

// graceFor returns the grace period an API deletion asked for, if any.
func (m *Manager) graceFor(uid types.UID) (int64, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	g, ok := m.deletionGrace[uid]
	return g, ok
}

// terminating reports whether any pod is being stopped: it has a worker
// but no source declares it any more.
func (m *Manager) terminating() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	desired := m.allDesiredLocked()
	for uid := range m.workers {
		if _, ok := desired[uid]; !ok {
			return true
		}
	}
	return false
}

func (m *Manager) statusOf(uid types.UID) *v1.PodStatus {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.statuses[uid]
}
