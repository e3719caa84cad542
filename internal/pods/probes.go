package pods

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/prober"
)

// probeKind names a container's probe as the kubelet's events do.
type probeKind string

const (
	startupProbe   probeKind = "Startup"
	livenessProbe  probeKind = "Liveness"
	readinessProbe probeKind = "Readiness"
)

// Prober runs one probe; *prober.Prober implements it.
type Prober interface {
	Probe(ctx context.Context, p *v1.Probe, t prober.Target) prober.Result
}

// probeKey identifies one probe of one container instance: a restarted
// container is probed afresh, as with the kubelet.
type probeKey struct {
	containerID string
	kind        probeKind
}

// probeWorker probes one container instance on the probe's period and keeps
// the verdict, applying the thresholds.
type probeWorker struct {
	stop chan struct{}
	// ok is the verdict after the thresholds; the initial verdict is
	// failure for startup and readiness, success for liveness.
	ok bool
	// done is set when a startup probe passed: it is not run again.
	done bool
	// failedOut is set when a startup probe reached its failure threshold.
	failedOut bool
	// adopted: the container ran before this knode started; its first
	// probe runs at once, to confirm the verdict it was trusted with.
	adopted bool
}

// probeRunner is what all pods' probe workers share: the prober, where
// verdict changes are published, and when this knode started.
type probeRunner struct {
	prober Prober
	events EventRecorder
	log    *slog.Logger

	// since is when this knode started: a container already running then
	// was adopted, and keeps being ready and started until a probe says
	// otherwise — the kubelet instead reports every probed pod not ready
	// after its own restart (kubernetes#100277), emptying Services.
	since time.Time
}

func newProbeRunner(p Prober, events EventRecorder, log *slog.Logger, since time.Time) *probeRunner {
	return &probeRunner{prober: p, events: events, log: log, since: since}
}

// podProbes are one pod's probe workers and their verdicts. The pod's
// record owns them; stopAll ends them when the pod goes.
type podProbes struct {
	runner  *probeRunner
	mu      sync.Mutex
	workers map[probeKey]*probeWorker
}

func newPodProbes(r *probeRunner) *podProbes {
	return &podProbes{runner: r, workers: map[probeKey]*probeWorker{}}
}

// probesOf lists a container's probes.
func probesOf(c *v1.Container) map[probeKind]*v1.Probe {
	out := map[probeKind]*v1.Probe{}
	if c.StartupProbe != nil {
		out[startupProbe] = c.StartupProbe
	}
	if c.LivenessProbe != nil {
		out[livenessProbe] = c.LivenessProbe
	}
	if c.ReadinessProbe != nil {
		out[readinessProbe] = c.ReadinessProbe
	}
	return out
}

// running is a running container instance to probe.
type running struct {
	c         *v1.Container
	id        string
	startedAt time.Time
}

// sync makes the pod's probe workers match its running containers: new
// instances get workers, gone ones lose theirs. wake is called when a
// verdict changes.
func (ps *podProbes) sync(pod *v1.Pod, containers []running, podIP string, wake func()) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	want := map[probeKey]bool{}
	for _, rc := range containers {
		for kind, p := range probesOf(rc.c) {
			key := probeKey{rc.id, kind}
			want[key] = true
			if ps.workers[key] != nil {
				continue
			}
			adopted := rc.startedAt.Before(ps.runner.since)
			w := &probeWorker{stop: make(chan struct{}), ok: kind == livenessProbe || adopted, done: kind == startupProbe && adopted, adopted: adopted}
			ps.workers[key] = w
			target := prober.Target{ContainerID: rc.id, PodIP: podIP, Ports: rc.c.Ports}
			go ps.run(pod, rc, kind, p, target, w, wake)
		}
	}
	for key := range ps.workers {
		if !want[key] {
			ps.stopLocked(key)
		}
	}
}

// stopAll stops the pod's probes (the pod is gone).
func (ps *podProbes) stopAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for key := range ps.workers {
		ps.stopLocked(key)
	}
}

func (ps *podProbes) stopLocked(key probeKey) {
	if w := ps.workers[key]; w != nil {
		close(w.stop)
		delete(ps.workers, key)
	}
}

// verdict is a probe's current verdict, and whether the probe exists.
func (ps *podProbes) verdict(containerID string, kind probeKind) (ok, exists bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	w := ps.workers[probeKey{containerID, kind}]
	if w == nil {
		return false, false
	}
	return w.ok || w.done, true
}

// started: a container with a startup probe has started once it passed.
func (ps *podProbes) started(c *v1.Container, containerID string) bool {
	if c.StartupProbe == nil {
		return true
	}
	ok, _ := ps.verdict(containerID, startupProbe)
	return ok
}

// ready: running, started, and passing its readiness probe if it has one.
func (ps *podProbes) ready(c *v1.Container, containerID string) bool {
	if !ps.started(c, containerID) {
		return false
	}
	if c.ReadinessProbe == nil {
		return true
	}
	ok, _ := ps.verdict(containerID, readinessProbe)
	return ok
}

// unhealthy names the probe that says the container must be restarted: a
// failed liveness probe, or a startup probe that gave up.
func (ps *podProbes) unhealthy(c *v1.Container, containerID string) (probeKind, *v1.Probe) {
	if c.StartupProbe != nil {
		if ok, exists := ps.verdict(containerID, startupProbe); exists && !ok && ps.gaveUp(containerID, startupProbe) {
			return startupProbe, c.StartupProbe
		}
	}
	if c.LivenessProbe != nil {
		if ok, exists := ps.verdict(containerID, livenessProbe); exists && !ok {
			return livenessProbe, c.LivenessProbe
		}
	}
	return "", nil
}

// gaveUp tells a startup probe that reached its failure threshold from one
// that has not passed yet.
func (ps *podProbes) gaveUp(containerID string, kind probeKind) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	w := ps.workers[probeKey{containerID, kind}]
	return w != nil && w.failedOut
}

// run probes until stopped: after the initial delay, every period, the
// verdict changing only after successThreshold passes or failureThreshold
// failures in a row. Liveness and readiness wait for the startup probe.
func (ps *podProbes) run(pod *v1.Pod, rc running, kind probeKind, p *v1.Probe, target prober.Target, w *probeWorker, wake func()) {
	// Unset values get the API server's defaults (static pods are defaulted
	// by their source already; this keeps a worker safe from zeros).
	period := time.Duration(orDefault(p.PeriodSeconds, 10)) * time.Second
	successNeeded, failuresAllowed := int(orDefault(p.SuccessThreshold, 1)), int(orDefault(p.FailureThreshold, 3))
	if kind != readinessProbe {
		successNeeded = 1 // the API requires 1 for liveness and startup
	}
	// A random start within the first period spreads many probes out, as
	// the kubelet does.
	first := time.Duration(rand.Int64N(int64(period)))
	if w.adopted {
		first = 0
	}
	if delay := time.Until(rc.startedAt.Add(time.Duration(p.InitialDelaySeconds) * time.Second)); delay > first {
		first = delay
	}
	timer := time.NewTimer(first)
	defer timer.Stop()
	successes, failures := 0, 0
	for {
		select {
		case <-w.stop:
			return
		case <-timer.C:
		}
		timer.Reset(period)
		if kind != startupProbe && !ps.started(rc.c, rc.id) {
			continue
		}
		if ps.finished(w) {
			return
		}
		result := ps.runner.prober.Probe(context.Background(), p, target)
		if result.Success {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
			msg := fmt.Sprintf("%s probe failed: %s", kind, strings.TrimSpace(result.Output))
			ps.runner.events.Event(pod, v1.EventTypeWarning, "Unhealthy", msg)
			ps.runner.log.Debug("probe failed", "pod", pod.Namespace+"/"+pod.Name, "container", rc.c.Name, "probe", kind, "output", result.Output)
		}
		changed := false
		ps.mu.Lock()
		switch {
		case successes >= successNeeded && !w.ok:
			w.ok, changed = true, true
			if kind == startupProbe {
				w.done = true
			}
		case failures >= failuresAllowed && (w.ok || kind == startupProbe && !w.failedOut):
			w.ok, changed = false, true
			if kind == startupProbe {
				w.failedOut = true
			}
		}
		ps.mu.Unlock()
		if changed {
			// Without a cluster there are no events: the log says it.
			ps.runner.log.Info("probe verdict changed", "pod", pod.Namespace+"/"+pod.Name, "container", rc.c.Name, "probe", kind,
				"success", result.Success, "output", result.Output)
			wake()
		}
	}
}

// finished: a startup probe that passed or gave up, or a liveness probe
// that failed (its container is being restarted), has nothing more to do.
func (ps *podProbes) finished(w *probeWorker) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return w.done || w.failedOut
}

func orDefault(v, def int32) int32 {
	if v <= 0 {
		return def
	}
	return v
}
