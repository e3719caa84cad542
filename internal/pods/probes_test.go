package pods

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"knode.io/knode/internal/prober"
)

// scriptedProber answers exec probes by their command's first word.
type scriptedProber struct {
	mu     sync.Mutex
	passes map[string]bool
}

func (s *scriptedProber) set(cmd string, pass bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.passes[cmd] = pass
}

func (s *scriptedProber) Probe(_ context.Context, p *v1.Probe, _ prober.Target) prober.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.passes[p.Exec.Command[0]] {
		return prober.Result{Success: true}
	}
	return prober.Result{Output: p.Exec.Command[0] + " says no"}
}

func probeFixture(t *testing.T) (*fixture, *scriptedProber) {
	f := newFixture(t)
	sp := &scriptedProber{passes: map[string]bool{}}
	f.m.d.probes = newProbeRunner(sp, f.events, f.m.log, time.Now())
	return f, sp
}

// restartProbes stands for a knode restart at since: uid's probe workers
// stop and its containers are probed afresh by a new runner.
func (f *fixture) restartProbes(uid types.UID, p Prober, since time.Time) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	r := f.m.recordLocked(uid)
	r.probes.stopAll()
	f.m.d.probes = newProbeRunner(p, f.events, f.m.log, since)
	r.probes = newPodProbes(f.m.d.probes)
}

func execProbe(cmd string) *v1.Probe {
	return &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{cmd}}}, PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func podReady(st *v1.PodStatus) bool {
	for _, c := range st.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func TestReadinessProbeGatesReady(t *testing.T) {
	f, sp := probeFixture(t)
	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.Containers[0].ReadinessProbe = execProbe("ready")
	w := f.worker(pod)
	f.sync(w)
	st := f.sync(w) // the running container gets its probe worker
	if st.ContainerStatuses[0].Ready || podReady(st) {
		t.Fatal("ready before its readiness probe passed")
	}
	var id string
	for _, c := range f.rt.Containers {
		id = c.Id
	}
	time.Sleep(1500 * time.Millisecond) // a failing probe or two
	if st := f.sync(w); st.ContainerStatuses[0].Ready {
		t.Fatal("ready while its readiness probe fails")
	}
	sp.set("ready", true)
	waitFor(t, "the readiness verdict", func() bool { ok, _ := f.probesOf(pod.UID).verdict(id, readinessProbe); return ok })
	st = f.sync(w)
	if !st.ContainerStatuses[0].Ready || !podReady(st) || !*st.ContainerStatuses[0].Started {
		t.Fatalf("not ready after the probe passed: %+v", st.ContainerStatuses[0])
	}
	if running, total := f.count("app"); running != 1 || total != 1 {
		t.Fatalf("a readiness probe restarted the container: running %d of %d", running, total)
	}
}

func TestLivenessProbeRestartsTheContainer(t *testing.T) {
	f, sp := probeFixture(t)
	sp.set("alive", false)
	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.Containers[0].LivenessProbe = execProbe("alive")
	w := f.worker(pod)
	f.sync(w)
	f.sync(w)
	var id string
	for _, c := range f.rt.Containers {
		id = c.Id
	}
	waitFor(t, "the liveness verdict", func() bool {
		k, _ := f.probesOf(pod.UID).unhealthy(&pod.Spec.Containers[0], id)
		return k == livenessProbe
	})
	f.events.take()
	f.sync(w) // kills it
	if running, _ := f.count("app"); running != 0 {
		t.Fatal("a container that failed its liveness probe still runs")
	}
	if got := f.events.take(); !slices.Contains(got, "Normal Killing: Container app failed liveness probe, will be restarted") {
		t.Fatalf("events %q", got)
	}
	f.sync(w) // the restart policy restarts it
	if running, total := f.count("app"); running != 1 || total != 2 {
		t.Fatalf("after the liveness kill: running %d of %d, want a new instance", running, total)
	}
}

func TestStartupProbeHoldsBackLiveness(t *testing.T) {
	f, sp := probeFixture(t)
	sp.set("alive", false) // would kill the container if it ran
	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.Containers[0].StartupProbe = execProbe("started")
	pod.Spec.Containers[0].StartupProbe.FailureThreshold = 1000
	pod.Spec.Containers[0].LivenessProbe = execProbe("alive")
	w := f.worker(pod)
	f.sync(w)
	st := f.sync(w)
	if *st.ContainerStatuses[0].Started {
		t.Fatal("started before its startup probe passed")
	}
	time.Sleep(2500 * time.Millisecond)
	f.sync(w)
	if running, total := f.count("app"); running != 1 || total != 1 {
		t.Fatalf("liveness ran before the startup probe passed: running %d of %d", running, total)
	}
	sp.set("started", true)
	sp.set("alive", true)
	var id string
	for _, c := range f.rt.Containers {
		id = c.Id
	}
	waitFor(t, "the startup verdict", func() bool { return f.probesOf(pod.UID).started(&pod.Spec.Containers[0], id) })
	if st := f.sync(w); !*st.ContainerStatuses[0].Started || !st.ContainerStatuses[0].Ready {
		t.Fatalf("after the startup probe passed: %+v", st.ContainerStatuses[0])
	}
}

// A container that ran before knode (re)started keeps its readiness until a
// probe says otherwise, and that probe runs at once (kubernetes#100277).
func TestAdoptedContainerStaysReadyUntilProbed(t *testing.T) {
	f, sp := probeFixture(t)
	sp.set("ready", true)
	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.Containers[0].ReadinessProbe = execProbe("ready")
	pod.Spec.Containers[0].ReadinessProbe.PeriodSeconds = 3600 // only the first, immediate probe can run
	w := f.worker(pod)
	f.sync(w)
	// Pretend knode restarted after the container started.
	f.restartProbes(pod.UID, sp, time.Now().Add(time.Minute))
	if st := f.sync(w); !st.ContainerStatuses[0].Ready {
		t.Fatal("an adopted container was reported not ready before any probe ran")
	}
	var id string
	for _, c := range f.rt.Containers {
		id = c.Id
	}
	// The immediate probe fails: the verdict follows at once, not after an hour.
	sp.set("ready", false)
	f.restartProbes(pod.UID, sp, time.Now().Add(time.Minute))
	f.sync(w)
	waitFor(t, "the immediate probe's verdict", func() bool { ok, _ := f.probesOf(pod.UID).verdict(id, readinessProbe); return !ok })
	if st := f.sync(w); st.ContainerStatuses[0].Ready {
		t.Fatal("still ready after the probe failed")
	}
}
