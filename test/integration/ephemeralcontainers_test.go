package integration

import (
	"context"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// watchWriter collects a stream and says when it holds want.
type watchWriter struct {
	mu   sync.Mutex
	buf  strings.Builder
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestEphemeralContainers: `kubectl debug` as API calls. An ephemeral
// container added through the pod's ephemeralcontainers subresource starts
// in the running pod, shares its target's process namespace (it sees the
// target's process), is reported in ephemeralContainerStatuses, serves its
// log and takes an attach; once it exits it is never restarted.
func TestEphemeralContainers(t *testing.T) {
	t.Parallel()
	cp, n := newClusterNode(t)
	ctx := context.Background()
	grace := int64(1)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "target", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: n.name, TerminationGracePeriodSeconds: &grace, AutomountServiceAccountToken: new(bool),
			Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3617"}}}}}
	if _, err := cp.core.Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	get := func() *v1.Pod {
		p, err := cp.core.Pods("default").Get(ctx, "target", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	n.eventually(2*time.Minute, "the target pod running", func() bool {
		p := get()
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	})

	// kubectl debug -it target --image=busybox --target=main
	p := get()
	p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers,
		v1.EphemeralContainer{TargetContainerName: "main", EphemeralContainerCommon: v1.EphemeralContainerCommon{
			Name: "debugger", Image: busybox, Stdin: true, TerminationMessagePolicy: v1.TerminationMessageReadFile,
			Command: []string{"sh", "-c", "echo debug-started; ps; exec cat"}}},
		v1.EphemeralContainer{EphemeralContainerCommon: v1.EphemeralContainerCommon{
			Name: "oneshot", Image: busybox, TerminationMessagePolicy: v1.TerminationMessageReadFile,
			Command: []string{"sh", "-c", "echo one shot; exit 3"}}})
	if _, err := cp.core.Pods("default").UpdateEphemeralContainers(ctx, "target", p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	status := func(p *v1.Pod, name string) *v1.ContainerStatus {
		for i := range p.Status.EphemeralContainerStatuses {
			if p.Status.EphemeralContainerStatuses[i].Name == name {
				return &p.Status.EphemeralContainerStatuses[i]
			}
		}
		return nil
	}
	var debugID string
	n.eventually(2*time.Minute, "the debugger Running and oneshot Terminated in ephemeralContainerStatuses", func() bool {
		p := get()
		d, o := status(p, "debugger"), status(p, "oneshot")
		if d == nil || d.State.Running == nil || o == nil || o.State.Terminated == nil {
			return false
		}
		debugID = d.ContainerID
		return true
	})
	p = get()
	if o := status(p, "oneshot"); o.State.Terminated.ExitCode != 3 || o.RestartCount != 0 {
		t.Errorf("oneshot: %+v", o)
	}
	if d := status(p, "debugger"); d.Ready || d.Started != nil || d.Image != busybox {
		t.Errorf("debugger status %+v: ephemeral containers are never ready and have no started flag", d)
	}
	if p.Status.Phase != v1.PodRunning || len(p.Status.ContainerStatuses) != 1 {
		t.Errorf("the pod's phase %s, %d container statuses", p.Status.Phase, len(p.Status.ContainerStatuses))
	}

	// Its log, through knode's API as `kubectl logs -c debugger` reads it:
	// the debugger saw the target's sleep, so it shares its PID namespace.
	var log string
	n.eventually(time.Minute, "the debugger's log", func() bool {
		code, _, body := n.raw("GET", "/containerLogs/default/target/debugger")
		log = body
		return code == 200 && strings.Contains(body, "debug-started")
	})
	if !strings.Contains(log, "sleep 3617") {
		t.Errorf("the debugger does not see its target's process (no shared PID namespace); ps:\n%s", log)
	}
	if code, _, body := n.raw("GET", "/containerLogs/default/target/oneshot"); code != 200 || !strings.Contains(body, "one shot") {
		t.Errorf("oneshot's log: %d %q", code, body)
	}

	// kubectl attach -i: what goes in comes back out through cat.
	q := url.Values{"input": {"1"}, "output": {"1"}, "error": {"1"}}
	u, _ := url.Parse(n.url() + "/attach/default/target/debugger?" + q.Encode())
	ex, err := remotecommand.NewSPDYExecutor(n.restConfig(), "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	stdinR, stdinW := io.Pipe()
	out := &watchWriter{want: "hello through attach", seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- ex.StreamWithContext(actx, remotecommand.StreamOptions{Stdin: stdinR, Stdout: out, Stderr: io.Discard})
	}()
	go func() { _, _ = io.WriteString(stdinW, "hello through attach\n") }()
	select {
	case <-out.seen:
	case err := <-done:
		t.Fatalf("attach ended before the echo: %v; got %q", err, out.String())
	case <-actx.Done():
		t.Fatalf("no echo through attach; got %q", out.String())
	}
	cancel()
	stdinW.Close()

	// Ephemeral containers are never restarted: stopping the debugger's
	// process leaves it terminated.
	p = get()
	if d := status(p, "debugger"); d.ContainerID != debugID {
		t.Fatalf("the debugger's container changed: %s then %s", debugID, d.ContainerID)
	}
	id := strings.TrimPrefix(debugID, "containerd://")
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	if err := n.cri.StopContainer(sctx, id, 1); err != nil {
		t.Fatal(err)
	}
	n.eventually(time.Minute, "the debugger terminated", func() bool {
		d := status(get(), "debugger")
		return d != nil && d.State.Terminated != nil
	})
	// Adding another ephemeral container makes knode sync the pod again:
	// once that one runs, the debugger is still its one terminated instance.
	p = get()
	p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, v1.EphemeralContainer{EphemeralContainerCommon: v1.EphemeralContainerCommon{
		Name: "later", Image: busybox, TerminationMessagePolicy: v1.TerminationMessageReadFile, Command: []string{"sleep", "3600"}}})
	if _, err := cp.core.Pods("default").UpdateEphemeralContainers(ctx, "target", p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(2*time.Minute, "the later ephemeral container running", func() bool {
		c := status(get(), "later")
		return c != nil && c.State.Running != nil
	})
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	defer lcancel()
	instances, err := n.cri.ListContainers(lctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{
		"io.kubernetes.pod.name": "target", "io.kubernetes.pod.namespace": "default", "io.kubernetes.container.name": "debugger"}})
	if err != nil {
		t.Fatal(err)
	}
	if d := status(get(), "debugger"); len(instances) != 1 || d.State.Terminated == nil || d.RestartCount != 0 {
		t.Errorf("debugger: %d instances, status %+v; want its one instance terminated, never restarted", len(instances), d)
	}
}
