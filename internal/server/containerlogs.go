package server

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"knode.io/knode/internal/apierr"
	"knode.io/knode/internal/podcontainer"
)

// containerLogs serves GET /containerLogs/{namespace}/{pod}/{container}
// with the kubelet's query parameters, streaming with follow=true until the
// container stops or the client goes away.
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	ns, podName, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	if err := validatePodRef(ns, podName, container); err != nil {
		writeError(w, err)
		return
	}
	opts, err := parseLogOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ref, err := podcontainer.ContainerID(s.cfg.Pods, ns, podName, container)
	if ref.Pod == nil {
		writeError(w, notFound(fmt.Sprintf("pod %q does not exist", podName)))
		return
	}
	if err != nil {
		writeError(w, notFound(fmt.Sprintf("container %q not found in pod %q", container, podName)))
		return
	}
	status := ref.Status
	id := status.ContainerID
	if opts.Previous {
		id = ""
		if t := status.LastTerminationState.Terminated; t != nil {
			id = t.ContainerID
		}
		if id == "" {
			writeError(w, badRequest(fmt.Sprintf("previous terminated container %q in pod %q not found", container, podName)))
			return
		}
	}
	if id == "" {
		writeError(w, badRequest(fmt.Sprintf("container %q in pod %q is waiting to start", container, podName)))
		return
	}
	id = podcontainer.RuntimeID(id)
	w.Header().Set("Content-Type", "text/plain")
	// Every write flushed, follow or not, as the kubelet's flushwriter:
	// the answer is chunked, never sent with a Content-Length (the API
	// server's websocket log stream drops what arrives with the end of a
	// sized body).
	fw := &flushWriter{w: w}
	if f, ok := w.(http.Flusher); ok {
		fw.flusher = f
	}
	if err := s.cfg.Logs.ReadLogs(r.Context(), id, opts, fw, fw); err != nil && !fw.wrote && r.Context().Err() == nil {
		writeError(w, internal(fmt.Sprintf("failed to read logs of %s/%s/%s: %v", ns, podName, container, err)))
	}
}

// parseLogOptions reads the kubelet's log query parameters; the last value
// of a repeated parameter wins. Invalid values get 422 as in the kubelet.
func parseLogOptions(r *http.Request) (*v1.PodLogOptions, error) {
	q := r.URL.Query()
	opts := &v1.PodLogOptions{}
	last := func(key string) (string, bool) {
		vals := q[key]
		if len(vals) == 0 {
			return "", false
		}
		return vals[len(vals)-1], true
	}
	invalid := func(key, val, why string) error {
		return apierr.New(apierr.Unprocessable, fmt.Sprintf("invalid %s %q: %s", key, val, why))
	}
	for _, key := range []string{"follow", "previous", "timestamps"} {
		if v, ok := last(key); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, invalid(key, v, "want true or false")
			}
			switch key {
			case "follow":
				opts.Follow = b
			case "previous":
				opts.Previous = b
			case "timestamps":
				opts.Timestamps = b
			}
		}
	}
	for _, key := range []string{"tailLines", "limitBytes", "sinceSeconds"} {
		v, ok := last(key)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, invalid(key, v, "want an integer")
		}
		switch key {
		case "tailLines":
			if n < 0 {
				return nil, invalid(key, v, "must be >= 0")
			}
			opts.TailLines = &n
		case "limitBytes":
			if n < 1 {
				return nil, invalid(key, v, "must be > 0")
			}
			opts.LimitBytes = &n
		case "sinceSeconds":
			if n < 1 {
				return nil, invalid(key, v, "must be > 0")
			}
			opts.SinceSeconds = &n
		}
	}
	if v, ok := last("sinceTime"); ok {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, invalid("sinceTime", v, "want RFC 3339")
		}
		if opts.SinceSeconds != nil {
			return nil, invalid("sinceTime", v, "sinceTime and sinceSeconds are mutually exclusive")
		}
		mt := metav1.NewTime(t)
		opts.SinceTime = &mt
	}
	return opts, nil
}

// flushWriter pushes each write to the client at once.
type flushWriter struct {
	w       http.ResponseWriter
	flusher http.Flusher
	wrote   bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.wrote = f.wrote || n > 0
	if f.flusher != nil {
		f.flusher.Flush()
	}
	return n, err
}
