package pods

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/apierr"
	"knode.io/knode/internal/podcontainer"
)

// Streamer is the part of the runtime that serves exec, attach and port
// forwarding: each call returns a URL of the runtime's streaming server,
// which the HTTPS API proxies to (as the kubelet does).
type Streamer interface {
	Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
	Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error)
	PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error)
}

// ErrNotFound means the pod or container is not one of knode's (kind
// NotFound).
var ErrNotFound = podcontainer.ErrNotFound

// ErrNotRunning means the container exists but does not run (kind
// Invalid: the kubelet answers 400).
var ErrNotRunning = apierr.New(apierr.Invalid, "not running")

// StreamOptions are what an exec or attach session carries.
type StreamOptions struct {
	Stdin, Stdout, Stderr, TTY bool
}

// ExecURL asks the runtime to run cmd in a running container of a managed
// pod and returns where to stream it.
func (m *Manager) ExecURL(ctx context.Context, namespace, pod, container string, cmd []string, o StreamOptions) (*url.URL, error) {
	id, err := m.runningContainer(namespace, pod, container)
	if err != nil {
		return nil, err
	}
	resp, err := m.streamer().Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: cmd, Tty: o.TTY, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr})
	if err != nil {
		return nil, fmt.Errorf("exec in %s/%s/%s: %w", namespace, pod, container, err)
	}
	return url.Parse(resp.Url)
}

// AttachURL is ExecURL for attaching to the container's own process.
func (m *Manager) AttachURL(ctx context.Context, namespace, pod, container string, o StreamOptions) (*url.URL, error) {
	id, err := m.runningContainer(namespace, pod, container)
	if err != nil {
		return nil, err
	}
	resp, err := m.streamer().Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Tty: o.TTY, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr})
	if err != nil {
		return nil, fmt.Errorf("attach to %s/%s/%s: %w", namespace, pod, container, err)
	}
	return url.Parse(resp.Url)
}

// PortForwardURL returns where to stream port forwarding into a managed
// pod's sandbox.
func (m *Manager) PortForwardURL(ctx context.Context, namespace, pod string, ports []int32) (*url.URL, error) {
	p, ok := m.GetPod(namespace, pod)
	if !ok {
		return nil, fmt.Errorf("pod %s/%s: %w", namespace, pod, ErrNotFound)
	}
	m.mu.RLock()
	sb := m.runtimePods[p.UID].newestSandbox()
	m.mu.RUnlock()
	if sb == nil || sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil, fmt.Errorf("pod %s/%s has no running sandbox: %w", namespace, pod, ErrNotRunning)
	}
	resp, err := m.streamer().PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sb.Id, Port: ports})
	if err != nil {
		return nil, fmt.Errorf("port forward to %s/%s: %w", namespace, pod, err)
	}
	return url.Parse(resp.Url)
}

// ContainerID finds a managed pod's container by the one rule logs, exec,
// attach and checkpoints share (package podcontainer): app, init and
// ephemeral containers, with the running instance's ID.
func (m *Manager) ContainerID(namespace, pod, container string) (podcontainer.Ref, error) {
	return podcontainer.ContainerID(m, namespace, pod, container)
}

// runningContainer finds the running instance of a pod's container.
func (m *Manager) runningContainer(namespace, pod, container string) (string, error) {
	ref, err := m.ContainerID(namespace, pod, container)
	if err != nil {
		return "", err
	}
	if ref.ID == "" {
		return "", fmt.Errorf("container %s in pod %s/%s: %w", container, namespace, pod, ErrNotRunning)
	}
	return ref.ID, nil
}

func (m *Manager) streamer() Streamer {
	if s, ok := m.opts.Runtime.(Streamer); ok {
		return s
	}
	return noStreaming{}
}

// noStreaming stands in for a runtime without a streaming server.
type noStreaming struct{}

var errNoStreaming = errors.New("the container runtime does not serve exec, attach or port forwarding")

func (noStreaming) Exec(context.Context, *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	return nil, errNoStreaming
}

func (noStreaming) Attach(context.Context, *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	return nil, errNoStreaming
}

func (noStreaming) PortForward(context.Context, *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	return nil, errNoStreaming
}
