// Package checkpoint is the node's checkpoint archive store: it takes and
// publishes archives (this file), lists, inspects and serves them
// (list.go, content.go), and applies the retention policy
// (internal/checkpoint/retention) after each checkpoint. It implements the
// kubelet checkpoint API's node side, safer than the kubelet's: the
// runtime writes to a hidden temporary file that becomes the archive only
// on success (never overwriting one), archives are root-only, one
// checkpoint per container runs at a time, parallelism is bounded, and
// retention keeps the directory from growing without end.
package checkpoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/apierr"
	"knode.io/knode/internal/checkpoint/format"
	"knode.io/knode/internal/checkpoint/retention"
	"knode.io/knode/internal/podcontainer"
)

// Runtime is the CRI call the service needs. cri-client's implementation
// turns the request's timeout into the call's deadline as the kubelet does.
type Runtime interface {
	CheckpointContainer(ctx context.Context, req *runtimeapi.CheckpointContainerRequest) error
}

// Pods finds pods by namespace and name, with live container status.
type Pods interface {
	GetPod(namespace, name string) (*v1.Pod, bool)
}

// Options configure a Service.
type Options struct {
	Dir     string
	Runtime Runtime
	Pods    Pods
	// DefaultTimeout is the runtime request timeout: the deadline for a
	// request without (or with a smaller) timeout.
	DefaultTimeout time.Duration
	MaxParallel    int
	Retention      retention.Policy
	// Diagnose explains a runtime error for an operator; may be nil.
	Diagnose func(error) string
	// Deleted is called for every archive retention removes, with the reason
	// (count, age, bytes).
	Deleted func(reason string)
	Log     *slog.Logger
	Now     func() time.Time
}

// Service takes, lists, inspects and deletes checkpoint archives.
type Service struct {
	opts  Options
	slots chan struct{}

	mu       sync.Mutex
	inflight map[string]bool // container IDs being checkpointed
	// dirMu serializes renames and retention so names and budgets are exact.
	dirMu sync.Mutex
	// retain wakes the retention worker; deleting a large archive takes
	// long enough on some filesystems that no request should wait for it.
	retain chan string
	// pending counts scheduled retention passes not yet finished.
	pending atomic.Int64
	// digestMu serializes digest computations (one disk pass at a time).
	digestMu sync.Mutex
}

// Errors carry kinds (internal/apierr); their text is the exact body the
// kubelet answers, which internal/server writes with the kind's code.

// New prepares the directory (0700), removes temporaries a crash left, and
// applies retention once.
func New(opts Options) (*Service, error) {
	if opts.MaxParallel < 1 {
		opts.MaxParallel = 1
	}
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = 2 * time.Minute
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Deleted == nil {
		opts.Deleted = func(string) {}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create checkpoints directory: %w", err)
	}
	if err := os.Chmod(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict checkpoints directory: %w", err)
	}
	s := &Service{opts: opts, slots: make(chan struct{}, opts.MaxParallel), inflight: map[string]bool{}, retain: make(chan string, 1)}
	temps, _ := filepath.Glob(filepath.Join(opts.Dir, format.TempPrefix+"*"))
	for _, t := range temps {
		if err := os.RemoveAll(t); err == nil {
			opts.Log.Warn("removed an unfinished checkpoint left by an earlier run", "file", t)
		}
	}
	s.enforceRetention("")
	return s, nil
}

// Run applies retention after each checkpoint until ctx ends.
func (s *Service) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case keep := <-s.retain:
			s.enforceRetention(keep)
			s.pending.Add(-1)
		}
	}
}

// requestRetention schedules a retention pass that spares keep. Requests
// arriving while one is pending coalesce; every archive is still checked.
func (s *Service) requestRetention(keep string) {
	s.pending.Add(1)
	select {
	case s.retain <- keep:
	default:
		s.pending.Add(-1)
	}
}

// Dir is the checkpoints directory.
func (s *Service) Dir() string { return s.opts.Dir }

// Target is a container resolved for checkpointing.
type Target struct {
	Namespace, Pod, Container string
	// ContainerID is empty when the container is declared but not running.
	ContainerID string
}

// Resolve finds the pod and container as the kubelet does: app, init and
// ephemeral containers are all valid names.
func (s *Service) Resolve(namespace, pod, container string) (Target, error) {
	ref, err := podcontainer.ContainerID(s.opts.Pods, namespace, pod, container)
	if ref.Pod == nil {
		return Target{}, apierr.New(apierr.NotFound, "pod does not exist")
	}
	if err != nil {
		return Target{}, apierr.New(apierr.NotFound, fmt.Sprintf("container %s does not exist", container))
	}
	return Target{Namespace: namespace, Pod: pod, Container: container, ContainerID: ref.ID}, nil
}

func (t Target) ref() string { return t.Namespace + "/" + t.Pod + "/" + t.Container }

func (t Target) failed(err error) *apierr.Error {
	return apierr.Wrap(apierr.Internal, fmt.Sprintf("checkpointing of %s failed (%v)", t.ref(), err), err)
}

// Result is a finished checkpoint and where its time went.
type Result struct {
	Path string
	// Waited is the time spent waiting for a free slot; Runtime the CRI call.
	Waited, Runtime time.Duration
}

// Checkpoint asks the runtime for an archive of t and returns its path.
func (s *Service) Checkpoint(ctx context.Context, t Target, timeout int64) (Result, error) {
	path, res, err := s.checkpoint(ctx, t, timeout)
	res.Path = path
	return res, err
}

func (s *Service) checkpoint(ctx context.Context, t Target, timeout int64) (string, Result, error) {
	var res Result
	if t.ContainerID == "" {
		return "", res, t.failed(fmt.Errorf("container %s not found running", t.Container))
	}
	if !s.begin(t.ContainerID) {
		return "", res, &apierr.Error{Kind: apierr.Conflict, RetryAfter: 5,
			Msg: fmt.Sprintf("a checkpoint of %s is already in progress; retry when it is done", t.ref())}
	}
	defer s.end(t.ContainerID)

	// Wait for a slot in order, within the same deadline the CRI call gets.
	wait := s.opts.DefaultTimeout
	if d := time.Duration(timeout) * time.Second; d > wait {
		wait = d
	}
	waitCtx, cancel := context.WithTimeout(ctx, wait)
	waitStart := time.Now()
	select {
	case s.slots <- struct{}{}:
		cancel()
	case <-waitCtx.Done():
		cancel()
		return "", res, &apierr.Error{Kind: apierr.Unavailable, RetryAfter: 10,
			Msg: fmt.Sprintf("checkpointing of %s failed (no free checkpoint slot within %s: %d checkpoints in progress)", t.ref(), wait, cap(s.slots))}
	}
	defer func() { <-s.slots }()
	res.Waited = time.Since(waitStart)

	now := s.opts.Now()
	name := format.Name(t.Pod, t.Namespace, t.Container, now)
	tmp := filepath.Join(s.opts.Dir, format.TempPrefix+randomHex()+"-"+name)
	req := &runtimeapi.CheckpointContainerRequest{ContainerId: t.ContainerID, Location: tmp, Timeout: timeout}
	callStart := time.Now()
	err := s.opts.Runtime.CheckpointContainer(ctx, req)
	res.Runtime = time.Since(callStart)
	if err != nil {
		_ = os.RemoveAll(tmp)
		e := t.failed(err)
		if s.opts.Diagnose != nil {
			if hint := s.opts.Diagnose(err); hint != "" {
				e.Msg += "\n" + hint
			}
		}
		s.opts.Log.Warn("checkpoint failed", "container", t.ref(), "err", err)
		return "", res, e
	}
	path, err := s.publish(tmp, name, t)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return "", res, t.failed(err)
	}
	s.opts.Log.Info("checkpoint written", "container", t.ref(), "archive", path)
	s.requestRetention(path)
	return path, res, nil
}

func (s *Service) begin(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[id] {
		return false
	}
	s.inflight[id] = true
	return true
}

func (s *Service) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, id)
}

// publish makes the finished temporary file the archive: root-only, labelled
// with its container, under the first free name. os.Link fails rather than
// replace an existing file, so no archive is ever clobbered.
func (s *Service) publish(tmp, name string, t Target) (string, error) {
	fi, err := os.Stat(tmp)
	if err != nil {
		return "", fmt.Errorf("the runtime reported success but wrote no archive: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("the runtime wrote %s, which is not a regular file", tmp)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return "", fmt.Errorf("restrict archive: %w", err)
	}
	format.SetLabels(tmp, t.Namespace, t.Pod, t.Container)
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	for n := 0; n < 1000; n++ {
		final := filepath.Join(s.opts.Dir, format.WithSuffix(name, n))
		err := os.Link(tmp, final)
		if err == nil {
			_ = os.Remove(tmp)
			return final, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("publish archive: %w", err)
		}
	}
	return "", fmt.Errorf("publish archive: no free name for %s", name)
}

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
