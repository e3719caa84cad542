package cri

import (
	"context"
	"fmt"
	"io"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/cri-client/pkg/logs"
)

// ReadLogs streams a container's CRI log file (tail, limit, since,
// timestamps, follow), using cri-client's reader, which decodes the CRI log
// format and follows rotation.
func (r *Runtime) ReadLogs(ctx context.Context, containerID string, opts *v1.PodLogOptions, stdout, stderr io.Writer) error {
	resp, err := r.RuntimeService.ContainerStatus(ctx, containerID, false)
	if err != nil {
		return fmt.Errorf("container status: %w", err)
	}
	path := resp.GetStatus().GetLogPath()
	if path == "" {
		return fmt.Errorf("container %s has no log path", containerID)
	}
	return logs.ReadLogs(ctx, path, containerID, logOptions(opts, time.Now()), r.RuntimeService, stdout, stderr)
}

// logOptions converts the API's options as the kubelet does: since is the
// later of sinceTime and now-sinceSeconds.
func logOptions(in *v1.PodLogOptions, now time.Time) *logs.LogOptions {
	out := &logs.LogOptions{
		TailLines:  in.TailLines,
		LimitBytes: in.LimitBytes,
		Follow:     in.Follow,
		Timestamp:  in.Timestamps,
	}
	if in.SinceSeconds != nil {
		out.Since = now.Add(-time.Duration(*in.SinceSeconds) * time.Second)
	}
	if in.SinceTime != nil && in.SinceTime.After(out.Since) {
		out.Since = in.SinceTime.Time
	}
	return out
}
