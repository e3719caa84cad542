// Package cri is knode's connection to a CRI v1 container runtime.
//
// It wraps k8s.io/cri-client behind a small constructor (whose upstream
// signature changes between releases), refuses endpoints that cannot work,
// retries until the runtime answers, and keeps a health verdict that the
// rest of the agent can report.
package cri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// ErrDockershim is returned for endpoints of the removed dockershim.
var ErrDockershim = errors.New("dockershim was removed from Kubernetes in 1.24 and knode does not speak to Docker Engine directly: " +
	"use containerd or CRI-O, or run cri-dockerd to keep Docker Engine and point --container-runtime-endpoint at its socket")

// ErrNotCRIv1 means the runtime answered but not in CRI v1.
var ErrNotCRIv1 = errors.New("the runtime does not speak CRI v1 (runtime.v1.RuntimeService): upgrade it (containerd >= 1.7 or 2.x, CRI-O >= 1.24)")

// CheckEndpoint refuses endpoints that can never work, before any dial.
func CheckEndpoint(endpoint string) error {
	if endpoint == "" {
		return errors.New("container runtime endpoint is empty")
	}
	trimmed := strings.TrimSuffix(endpoint, "/")
	if strings.HasSuffix(trimmed, "dockershim.sock") || strings.HasSuffix(trimmed, "/docker.sock") || trimmed == "unix://docker.sock" {
		return fmt.Errorf("endpoint %q: %w", endpoint, ErrDockershim)
	}
	if strings.Contains(endpoint, "://") && !strings.HasPrefix(endpoint, "unix://") {
		return fmt.Errorf("endpoint %q: only unix sockets are supported (unix:///path/to.sock)", endpoint)
	}
	return nil
}

// Runtime is a live connection to the runtime's two CRI services.
type Runtime struct {
	internalapi.RuntimeService
	internalapi.ImageManagerService

	endpoint string
	name     string
	version  string
	health   *Health
}

// Endpoint is the socket knode dialed.
func (r *Runtime) Endpoint() string { return r.endpoint }

// Description is "<RuntimeName>://<RuntimeVersion>", the form `kubectl get nodes -o wide` shows.
func (r *Runtime) Description() string { return r.name + "://" + r.version }

// Name is the runtime's own name, e.g. "containerd"; container IDs are reported as "<name>://<id>".
func (r *Runtime) Name() string { return r.name }

// Close ends both gRPC connections.
func (r *Runtime) Close(ctx context.Context) error {
	return errors.Join(r.RuntimeService.Close(ctx), r.ImageManagerService.Close(ctx))
}

// Health is the runtime's reachability as last observed.
func (r *Runtime) Health() *Health { return r.health }

// Connect dials endpoint, retrying with back-off while the runtime is
// unreachable, until ctx ends. A runtime that answers but does not speak CRI
// v1 is refused at once: retrying cannot fix it.
func Connect(ctx context.Context, log *slog.Logger, endpoint string, requestTimeout time.Duration) (*Runtime, error) {
	if err := CheckEndpoint(endpoint); err != nil {
		return nil, err
	}
	if !strings.Contains(endpoint, "://") {
		endpoint = "unix://" + endpoint
	}
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		rt, err := dial(ctx, endpoint, requestTimeout)
		if err == nil {
			log.Info("connected to container runtime", "endpoint", endpoint, "runtime", rt.Description())
			return rt, nil
		}
		if errors.Is(err, ErrNotCRIv1) {
			return nil, err
		}
		log.Warn("container runtime not reachable, retrying", "endpoint", endpoint, "attempt", attempt, "retryIn", delay, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to %s: %w (last error: %v)", endpoint, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

func dial(ctx context.Context, endpoint string, requestTimeout time.Duration) (*Runtime, error) {
	// A short connection timeout: dial failures are retried by Connect.
	connTimeout := min(requestTimeout, 10*time.Second)
	rs, err := remote.NewRemoteRuntimeServiceBuilder().
		WithEndpoint(endpoint).
		WithConnectionTimeout(requestTimeout).
		WithTracerProvider(nil).
		Build(ctx)
	if err != nil {
		if unimplemented(err) {
			return nil, fmt.Errorf("endpoint %s: %w", endpoint, ErrNotCRIv1)
		}
		return nil, fmt.Errorf("runtime service: %w", err)
	}
	is, err := remote.NewRemoteImageServiceBuilder().
		WithEndpoint(endpoint).
		WithConnectionTimeout(requestTimeout).
		WithTracerProvider(nil).
		Build(ctx)
	if err != nil {
		if unimplemented(err) {
			return nil, fmt.Errorf("endpoint %s: image service: %w", endpoint, ErrNotCRIv1)
		}
		return nil, fmt.Errorf("image service: %w", err)
	}
	vctx, cancel := context.WithTimeout(ctx, connTimeout)
	defer cancel()
	v, err := rs.Version(vctx, "v1")
	if err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	rt := &Runtime{
		RuntimeService:      rs,
		ImageManagerService: is,
		endpoint:            endpoint,
		name:                v.RuntimeName,
		version:             v.RuntimeVersion,
	}
	rt.health = newHealth(rs)
	return rt, nil
}

func unimplemented(err error) bool {
	return status.Code(errors.Unwrap(err)) == codes.Unimplemented || strings.Contains(err.Error(), "code = Unimplemented")
}

// Health tracks whether the runtime answers and is ready. It is updated by
// Watch and read by /healthz and the pod workers.
type Health struct {
	rt    internalapi.RuntimeService
	mu    sync.RWMutex
	err   error
	net   error
	since time.Time
	// handlers are the runtime handlers and their features, as the last
	// answered Status listed them.
	handlers []*runtimeapi.RuntimeHandler
}

func newHealth(rt internalapi.RuntimeService) *Health {
	return &Health{rt: rt, since: time.Now()}
}

// Err is nil while the runtime answers Status and reports RuntimeReady.
func (h *Health) Err() error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.err
}

// NetworkErr is nil while the runtime reports NetworkReady (its pod
// network, CNI, is set up). A node is not Ready without it, as with the
// kubelet, though knode itself is healthy and host-network pods still run.
func (h *Health) NetworkErr() error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.net
}

// RuntimeHandlers are the runtime's handlers and their features (user
// namespaces, recursive read-only mounts) as its last answered Status
// listed them, the way the kubelet keeps them between its status checks;
// none before the first answer, or from a runtime too old to list them.
func (h *Health) RuntimeHandlers() []*runtimeapi.RuntimeHandler {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.handlers
}

// Check asks the runtime for its status once and records the verdict.
func (h *Health) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := h.rt.Status(ctx, false)
	var verdict, network error
	switch {
	case err != nil:
		verdict = fmt.Errorf("container runtime is down: %w", err)
	case resp.GetStatus() == nil:
		verdict = errors.New("container runtime returned no status")
	default:
		for _, c := range resp.Status.Conditions {
			switch {
			case c.Type == runtimeapi.RuntimeReady && !c.Status:
				verdict = fmt.Errorf("container runtime not ready: %s: %s", c.Reason, c.Message)
			case c.Type == runtimeapi.NetworkReady && !c.Status:
				// The kubelet's wording, which operators grep for.
				network = fmt.Errorf("container runtime network not ready: NetworkReady=false reason:%s message:%s", c.Reason, c.Message)
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if (verdict == nil) != (h.err == nil) {
		h.since = time.Now()
	}
	if err == nil {
		h.handlers = resp.GetRuntimeHandlers()
	}
	h.err, h.net = verdict, network
	return verdict
}

// Watch checks health every interval until ctx ends, logging each change.
// gRPC reconnects on its own with back-off; this loop only observes.
func (h *Health) Watch(ctx context.Context, log *slog.Logger, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		err := h.Check(ctx)
		switch {
		case err != nil && last == nil:
			log.Error("container runtime became unhealthy", "err", err)
		case err == nil && last != nil:
			log.Info("container runtime is healthy again")
		}
		last = err
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
