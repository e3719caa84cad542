package server

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"knode.io/knode/internal/checkpoint"
)

// Checkpoints is the checkpoint service the API asks.
type Checkpoints interface {
	Resolve(namespace, pod, container string) (checkpoint.Target, error)
	Checkpoint(ctx context.Context, t checkpoint.Target, timeout int64) (checkpoint.Result, error)
	List(f checkpoint.Filter) ([]checkpoint.Archive, error)
	Inspect(name string) (*checkpoint.Details, error)
	Delete(name string) error
	Open(name string) (*checkpoint.Content, error)
}

// installCheckpoints adds the checkpoint routes; they exist only while the
// ContainerCheckpoint gate is on (else every path here is 404).
func (s *Server) installCheckpoints(c Checkpoints) {
	s.Handle("POST /checkpoint/{namespace}/{pod}/{container}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.checkpoint(c, w, r)
	}), false)
	// Any other method on the path: the kubelet's 405.
	s.Handle("/checkpoint/{namespace}/{pod}/{container}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "405: Method Not Allowed", http.StatusMethodNotAllowed)
	}), false)
	s.Handle("GET /checkpoints", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		list, err := c.List(checkpoint.Filter{Namespace: q.Get("namespace"), Pod: q.Get("pod"), Container: q.Get("container")})
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": list})
	}), false)
	s.Handle("GET /checkpoints/{archive}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := c.Inspect(r.PathValue("archive"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, d)
	}), false)
	s.Handle("GET /checkpoints/{archive}/content", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		content, err := c.Open(r.PathValue("archive"))
		if err != nil {
			writeError(w, err)
			return
		}
		defer content.Close()
		sum := content.KnownDigest()
		w.Header().Set("Content-Type", "application/x-tar")
		if sum == "" && r.Header.Get("Range") == "" && r.Header.Get("X-Checkpoint-Digest") == "trailer" {
			// Digest not known yet and the client accepts it as a trailer
			// (knode's own client does): stream the archive and compute the
			// digest on the way instead of reading it twice. A trailer needs
			// chunked encoding, so no Content-Length here; X-Checkpoint-Size
			// tells the size. Other clients get Content-Length and the
			// Digest header, after one pass to compute it.
			w.Header().Set("Trailer", "X-Checkpoint-Sha256")
			w.Header().Set("X-Checkpoint-Size", strconv.FormatInt(content.Size, 10))
			sum, err := content.StreamDigest(w)
			if err != nil {
				return
			}
			w.Header().Set("X-Checkpoint-Sha256", sum)
			return
		}
		if sum == "" {
			sum = content.Digest()
		}
		raw, _ := hex.DecodeString(sum)
		// The digest of the whole archive (RFC 3230), also for ranges, so a
		// resumed download is verified end to end.
		w.Header().Set("Digest", "sha-256="+base64.StdEncoding.EncodeToString(raw))
		w.Header().Set("X-Checkpoint-Sha256", sum)
		http.ServeContent(w, r, content.Name, content.ModTime, content.ReadSeeker())
	}), false)
	s.Handle("DELETE /checkpoints/{archive}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.Delete(r.PathValue("archive")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}), false)
}

// checkpoint serves POST /checkpoint/{namespace}/{pod}/{container} with the
// kubelet's answers, in the kubelet's order: pod, container, timeout.
func (s *Server) checkpoint(c Checkpoints, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ns, pod, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	// A name no pod can have is a pod that does not exist; it never reaches a lookup.
	if len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(pod)) > 0 {
		writeError(w, notFound("pod does not exist"))
		return
	}
	target, err := c.Resolve(ns, pod, container)
	if err != nil {
		writeError(w, err)
		return
	}
	var timeout int64
	if vals, ok := r.URL.Query()["timeout"]; ok {
		// The last value wins, as in the kubelet.
		t, err := strconv.ParseInt(vals[len(vals)-1], 10, 64)
		if err != nil {
			writeError(w, notFound("cannot parse value of timeout parameter"))
			return
		}
		timeout = t
	}
	res, err := c.Checkpoint(r.Context(), target, timeout)
	if err != nil {
		writeError(w, err)
		return
	}
	// knode's own share of the request: everything but waiting for a slot
	// and the runtime's work, reported for operators and the benchmark.
	own := time.Since(start) - res.Waited - res.Runtime
	w.Header().Set("X-Knode-Own-Microseconds", strconv.FormatInt(own.Microseconds(), 10))
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.CheckpointOwnTime.Observe(own.Seconds())
	}
	writeJSON(w, http.StatusOK, struct {
		Items []string `json:"items"`
	}{Items: []string{res.Path}})
}
