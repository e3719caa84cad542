// Package logrotation keeps container log files bounded, as the kubelet's
// container log manager does (containerLogMaxSize, containerLogMaxFiles):
// a log that outgrows the limit is renamed with a timestamp, the runtime is
// told to reopen it, older rotations are gzipped and the oldest removed.
// Without it a chatty container fills the node's disk.
package logrotation

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Runtime is the part of the CRI runtime service rotation needs.
type Runtime interface {
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	ContainerStatus(ctx context.Context, containerID string, verbose bool) (*runtimeapi.ContainerStatusResponse, error)
	ReopenContainerLog(ctx context.Context, containerID string) error
}

// The kubelet's defaults.
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxFiles = 5
	checkInterval   = 10 * time.Second
	timestampFormat = "20060102-150405"
	compressSuffix  = ".gz"
	tmpSuffix       = ".tmp"
)

// Options configure a Rotator.
type Options struct {
	Runtime Runtime
	// Selector keeps to the containers this knode made.
	Selector map[string]string
	// MaxSize is the size in bytes at which a log is rotated.
	MaxSize int64
	// MaxFiles counts the current log and its rotations (at least 2).
	MaxFiles       int
	RequestTimeout time.Duration
	Log            *slog.Logger
	Now            func() time.Time
}

// Rotator rotates the running containers' logs.
type Rotator struct{ opts Options }

// New checks the limits and returns a Rotator.
func New(opts Options) (*Rotator, error) {
	if opts.MaxSize <= 0 {
		return nil, fmt.Errorf("container log max size must be positive, got %d", opts.MaxSize)
	}
	if opts.MaxFiles < 2 {
		return nil, fmt.Errorf("container log max files must be at least 2, got %d", opts.MaxFiles)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Rotator{opts: opts}, nil
}

// Run rotates every 10 seconds until ctx ends.
func (r *Rotator) Run(ctx context.Context) {
	t := time.NewTicker(checkInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.RotateAll(ctx); err != nil {
			r.opts.Log.Warn("container log rotation failed", "err", err)
		}
	}
}

// RotateAll rotates each running container's log that needs it.
func (r *Rotator) RotateAll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.RequestTimeout)
	defer cancel()
	containers, err := r.opts.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: r.opts.Selector,
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, c := range containers {
		resp, err := r.opts.Runtime.ContainerStatus(ctx, c.Id, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", c.Id, err))
			continue
		}
		path := resp.GetStatus().GetLogPath()
		if path == "" {
			continue
		}
		if err := r.rotate(ctx, c.Id, path); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", c.Id, err))
		}
	}
	return errors.Join(errs...)
}

// rotate rotates a container's log once it is over the limit, as the
// kubelet does: the oldest rotations go so that, with the new one and the
// current log, MaxFiles remain; the earlier rotations are gzipped (the new
// one stays plain for readers still finishing it); the log is renamed with a
// timestamp and the runtime reopens it.
func (r *Rotator) rotate(ctx context.Context, id, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil // nothing logged yet
		}
		return err
	}
	if fi.Size() < r.opts.MaxSize {
		return nil
	}
	rotated, err := r.rotations(path)
	if err != nil {
		return err
	}
	for len(rotated) > r.opts.MaxFiles-2 {
		if err := os.Remove(rotated[0]); err != nil && !os.IsNotExist(err) {
			return err
		}
		rotated = rotated[1:]
	}
	for _, f := range rotated {
		if !strings.HasSuffix(f, compressSuffix) {
			if err := compress(f); err != nil {
				return fmt.Errorf("compress %s: %w", f, err)
			}
		}
	}
	target := path + "." + r.opts.Now().Format(timestampFormat)
	if err := os.Rename(path, target); err != nil {
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	if err := r.opts.Runtime.ReopenContainerLog(ctx, id); err != nil {
		// The runtime still writes to the renamed file: give it its name back.
		if rerr := os.Rename(target, path); rerr != nil {
			return errors.Join(fmt.Errorf("reopen log: %w", err), fmt.Errorf("restore %s: %w", path, rerr))
		}
		return fmt.Errorf("reopen log: %w", err)
	}
	r.opts.Log.Debug("container log rotated", "container", id, "size", fi.Size(), "to", target)
	return nil
}

// rotations lists a log's earlier rotations, oldest first, and removes
// leftovers of an interrupted compression.
func (r *Rotator) rotations(path string) ([]string, error) {
	matches, err := filepath.Glob(path + ".*")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		if strings.HasSuffix(m, tmpSuffix) {
			_ = os.Remove(m)
			continue
		}
		out = append(out, m)
	}
	// Timestamps sort as text; ".gz" does not change the order.
	sort.Strings(out)
	return out, nil
}

// compress gzips a rotated log next to it, then removes the original.
func compress(path string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := path + compressSuffix + tmpSuffix
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	err = errors.Join(err, zw.Close(), out.Close())
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path+compressSuffix); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Remove(path)
}
