package pods

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"

	"knode.io/knode/internal/podsource"
)

const image = "example/app:1"

type fixture struct {
	t      *testing.T
	rt     *critest.FakeRuntimeService
	img    *critest.FakeImageService
	m      *Manager
	events *events
}

// events keeps what the manager published, as "Type Reason: message".
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) Event(_ *v1.Pod, eventType, reason, message string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, eventType+" "+reason+": "+message)
}

func (e *events) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.list
	e.list = nil
	return out
}

func newFixture(t *testing.T) *fixture {
	rt := critest.NewFakeRuntimeService()
	img := critest.NewFakeImageService()
	img.SetFakeImages([]string{image})
	f := fixtureOn(t, rt, img)
	f.rt, f.img = rt, img
	return f
}

// fixtureOn is a fixture whose manager uses the runtime and image services
// given; the caller sets the fakes it inspects.
func fixtureOn(t *testing.T, rt Runtime, img Images) *fixture {
	ev := &events{}
	m, err := NewManager(Options{
		Events:     ev,
		Runtime:    rt,
		Images:     img,
		RootDir:    t.TempDir(),
		PodLogsDir: t.TempDir(),
		CgroupRoot: "/kubepods",
		HostIP:     "192.0.2.10",
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, "file")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, m: m, events: ev}
}

func testPod(policy v1.RestartPolicy, init ...string) *v1.Pod {
	grace := int64(7)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Namespace: "default", UID: "uid-1",
			Annotations: map[string]string{podsource.HashAnnotation: "h1"}},
		Spec: v1.PodSpec{
			RestartPolicy:                 policy,
			TerminationGracePeriodSeconds: &grace,
			Containers:                    []v1.Container{{Name: "app", Image: image, ImagePullPolicy: v1.PullIfNotPresent}},
		},
	}
	for _, name := range init {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, v1.Container{Name: name, Image: image, ImagePullPolicy: v1.PullIfNotPresent})
	}
	return pod
}

// worker makes pod the file source's only pod and returns its worker.
func (f *fixture) worker(pod *v1.Pod) *worker {
	f.m.SetPods("file", []*v1.Pod{pod})
	return f.newWorker(pod.UID)
}

// newWorker makes a worker for uid's record, as Manager.Run would.
func (f *fixture) newWorker(uid types.UID) *worker {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	return newWorker(f.m.d, f.m.recordLocked(uid))
}

// probesOf is uid's probe workers.
func (f *fixture) probesOf(uid types.UID) *podProbes {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	return f.m.recordLocked(uid).probes
}

// sync runs one worker pass for the pod and returns its status.
func (f *fixture) sync(w *worker) *v1.PodStatus {
	f.t.Helper()
	w.sync(context.Background())
	return f.m.statusOf(w.uid)
}

// exit makes every running container named name exit with code.
func (f *fixture) exit(name string, code int32) {
	f.rt.Lock()
	defer f.rt.Unlock()
	for _, c := range f.rt.Containers {
		if c.Metadata.Name == name && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			c.State = runtimeapi.ContainerState_CONTAINER_EXITED
			c.ExitCode = code
			c.FinishedAt = time.Now().UnixNano()
		}
	}
}

func (f *fixture) count(name string) (running, total int) {
	f.rt.Lock()
	defer f.rt.Unlock()
	for _, c := range f.rt.Containers {
		if c.Metadata.Name == name {
			total++
			if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				running++
			}
		}
	}
	return running, total
}

func TestPodStartsAndReportsRunning(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	w := f.worker(pod)
	st := f.sync(w)
	if running, _ := f.count("app"); running != 1 {
		t.Fatalf("want the app container running, got %d", running)
	}
	if st.Phase != v1.PodRunning || st.PodIP == "" || st.HostIP != "192.0.2.10" {
		t.Fatalf("status: phase=%s podIP=%q hostIP=%q", st.Phase, st.PodIP, st.HostIP)
	}
	cs := st.ContainerStatuses[0]
	if cs.State.Running == nil || !cs.Ready || cs.RestartCount != 0 || cs.ContainerID == "" {
		t.Fatalf("container status: %+v", cs)
	}
	want := []string{
		// knode's test node has no cluster DNS: the kubelet's warning for a ClusterFirst pod.
		`Warning MissingClusterDNS: pod: "web-n1_default(uid-1)". kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.`,
		`Normal Pulled: Container image "example/app:1" already present on machine and can be accessed by the pod`,
		"Normal Created: Created container: app",
		"Normal Started: Started container app",
	}
	if got := f.events.take(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	// A second pass changes nothing: the worker is idempotent.
	f.sync(w)
	if _, total := f.count("app"); total != 1 {
		t.Fatalf("a second sync created another container: %d", total)
	}
	if got := f.events.take(); len(got) != 0 {
		t.Fatalf("a sync that did nothing published %q", got)
	}
}

// A status reporter is woken by a change of status, and only by a change.
func TestPodsChangedSignalsStatusChanges(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	w := f.worker(pod)
	changed := f.m.PodsChanged()
	f.sync(w)
	select {
	case <-changed:
	default:
		t.Fatal("a pod that started running did not signal a change")
	}
	changed = f.m.PodsChanged()
	f.sync(w)
	select {
	case <-changed:
		t.Fatal("a sync that changed nothing signalled a change")
	default:
	}
}

func TestCrashLoopBackOff(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	w := f.worker(pod)
	f.sync(w)

	f.exit("app", 2)
	st := f.sync(w) // first restart is immediate
	if running, total := f.count("app"); running != 1 || total != 2 {
		t.Fatalf("after first exit: running=%d total=%d", running, total)
	}
	if st.ContainerStatuses[0].RestartCount != 1 || st.ContainerStatuses[0].LastTerminationState.Terminated.ExitCode != 2 {
		t.Fatalf("status after restart: %+v", st.ContainerStatuses[0])
	}

	f.exit("app", 2)
	st = f.sync(w) // second exit falls within the 10 s back-off
	if running, total := f.count("app"); running != 0 || total != 2 {
		t.Fatalf("restarted inside the back-off window: running=%d total=%d", running, total)
	}
	cs := st.ContainerStatuses[0]
	if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" {
		t.Fatalf("want CrashLoopBackOff, got %+v", cs.State)
	}
	if st.Phase != v1.PodRunning {
		t.Fatalf("a restarting pod is Running, got %s", st.Phase)
	}
	got := f.events.take()
	if last := got[len(got)-1]; last != "Warning BackOff: Back-off restarting failed container app in pod web-n1_default(uid-1)" {
		t.Fatalf("last event %q, want the kubelet's BackOff warning (all: %q)", last, got)
	}
}

func TestRestartPolicy(t *testing.T) {
	tests := []struct {
		policy      v1.RestartPolicy
		exit        int32
		wantRestart bool
		wantPhase   v1.PodPhase
	}{
		{v1.RestartPolicyAlways, 0, true, v1.PodRunning},
		{v1.RestartPolicyOnFailure, 1, true, v1.PodRunning},
		{v1.RestartPolicyOnFailure, 0, false, v1.PodSucceeded},
		{v1.RestartPolicyNever, 1, false, v1.PodFailed},
		{v1.RestartPolicyNever, 0, false, v1.PodSucceeded},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			f := newFixture(t)
			pod := testPod(tt.policy)
			f.m.SetPods("file", []*v1.Pod{pod})
			w := f.newWorker(pod.UID)
			f.sync(w)
			f.exit("app", tt.exit)
			st := f.sync(w)
			_, total := f.count("app")
			if (total == 2) != tt.wantRestart {
				t.Fatalf("restarted=%v, want %v", total == 2, tt.wantRestart)
			}
			if st.Phase != tt.wantPhase {
				t.Fatalf("phase %s, want %s", st.Phase, tt.wantPhase)
			}
			if !tt.wantRestart {
				for _, sb := range f.rt.Sandboxes {
					if sb.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
						t.Fatalf("a finished pod's sandbox must be stopped")
					}
				}
			}
		})
	}
}

func TestInitContainersInOrder(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways, "init1", "init2")
	w := f.worker(pod)
	st := f.sync(w)
	if r1, _ := f.count("init1"); r1 != 1 {
		t.Fatal("init1 not started first")
	}
	if _, t2 := f.count("init2"); t2 != 0 {
		t.Fatal("init2 started before init1 finished")
	}
	if st.Phase != v1.PodPending || st.ContainerStatuses[0].State.Waiting.Reason != "PodInitializing" {
		t.Fatalf("while initializing: phase=%s app=%+v", st.Phase, st.ContainerStatuses[0].State)
	}
	f.exit("init1", 0)
	f.sync(w)
	if _, a := f.count("app"); a != 0 {
		t.Fatal("app started before init2")
	}
	f.exit("init2", 0)
	st = f.sync(w)
	if r, _ := f.count("app"); r != 1 {
		t.Fatal("app not started after the init containers")
	}
	if st.Phase != v1.PodRunning {
		t.Fatalf("phase %s", st.Phase)
	}
}

func TestFailedInitWithRestartNeverFailsPod(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyNever, "init1")
	w := f.worker(pod)
	f.sync(w)
	f.exit("init1", 1)
	st := f.sync(w)
	if _, a := f.count("app"); a != 0 {
		t.Fatal("app started after a failed init container")
	}
	if _, i := f.count("init1"); i != 1 {
		t.Fatal("init container restarted under restartPolicy Never")
	}
	if st.Phase != v1.PodFailed {
		t.Fatalf("phase %s, want Failed", st.Phase)
	}
}

func TestRemovedPodIsTerminatedWithGrace(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	w := f.worker(pod)
	f.sync(w)
	f.m.SetPods("file", nil)
	if _, gone := w.sync(context.Background()); gone {
		t.Fatal("worker reported the pod gone while its sandbox exists")
	}
	if len(f.rt.Sandboxes) != 0 || len(f.rt.Containers) != 0 {
		t.Fatalf("pod not removed: %d sandboxes, %d containers", len(f.rt.Sandboxes), len(f.rt.Containers))
	}
	if _, gone := w.sync(context.Background()); !gone {
		t.Fatal("worker did not finish after the pod was removed")
	}
	stops := 0
	for _, call := range f.rt.GetCalls() {
		if call == "StopContainer" {
			stops++
		}
	}
	if stops != 1 {
		t.Fatalf("want one StopContainer call, got %d", stops)
	}
}

func TestSpecChangeReplacesPod(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	w := f.worker(pod)
	f.sync(w)
	changed := pod.DeepCopy()
	changed.Annotations[podsource.HashAnnotation] = "h2"
	f.m.SetPods("file", []*v1.Pod{changed})
	f.sync(w) // kills and removes the old pod
	f.sync(w) // creates it anew
	for _, sb := range f.rt.Sandboxes {
		if sb.Annotations[podsource.HashAnnotation] != "h2" {
			t.Fatalf("sandbox of the old spec survived")
		}
	}
	if r, total := f.count("app"); r != 1 || total != 1 {
		t.Fatalf("running=%d total=%d after replacement", r, total)
	}
}

func TestImagePullPolicies(t *testing.T) {
	tests := []struct {
		policy   v1.PullPolicy
		present  bool
		wantPull bool
		reason   string
	}{
		{v1.PullIfNotPresent, true, false, ""},
		{v1.PullIfNotPresent, false, true, ""},
		{v1.PullAlways, true, true, ""},
		{v1.PullNever, false, false, "ErrImageNeverPull"},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			f := newFixture(t)
			if !tt.present {
				f.img.SetFakeImages(nil)
			}
			pod := testPod(v1.RestartPolicyAlways)
			pod.Spec.Containers[0].ImagePullPolicy = tt.policy
			f.m.SetPods("file", []*v1.Pod{pod})
			w := f.newWorker(pod.UID)
			st := f.sync(w)
			pulled := false
			for _, c := range f.img.Called {
				pulled = pulled || c == "PullImage"
			}
			if pulled != tt.wantPull {
				t.Fatalf("pulled=%v, want %v", pulled, tt.wantPull)
			}
			if tt.reason != "" {
				if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != tt.reason {
					t.Fatalf("want waiting reason %s, got %+v", tt.reason, st.ContainerStatuses[0].State)
				}
			}
		})
	}
}
