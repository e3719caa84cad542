package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"knode.io/knode/internal/apierr"
	"knode.io/knode/internal/migrate"
)

// Receiver pulls an archive from another node and runs the pod that resumes it.
type Receiver interface {
	Receive(ctx context.Context, req migrate.ReceiveRequest) (*migrate.ReceiveResult, error)
	Undo(name string) error
}

// PodStopper stops a static pod of this node.
type PodStopper interface {
	StopPod(namespace, name string) (string, error)
}

// maxRestoreRequest bounds a POST /restores body: three short strings.
const maxRestoreRequest = 64 << 10

func (s *Server) installMigration(rc Receiver, stopper PodStopper) {
	if rc != nil {
		s.Handle("POST /restores", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var req migrate.ReceiveRequest
			dec := json.NewDecoder(io.LimitReader(r.Body, maxRestoreRequest))
			// A field knode does not know is refused, never ignored.
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				writeError(w, badRequest(fmt.Sprintf("decode restore request: %v", err)))
				return
			}
			res, err := rc.Receive(r.Context(), req)
			if err != nil {
				// Receive refuses with a kinded error (a stable text); anything
				// else is logged here and answered without its details.
				if apierr.KindOf(err) == apierr.Unknown {
					s.cfg.Log.Error("POST /restores failed", "err", err)
					err = internal("ReceiveFailed: the archive could not be received (see the node's log)")
				}
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusCreated, res)
		}), false)
		s.Handle("DELETE /restores/{name}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := rc.Undo(r.PathValue("name")); err != nil {
				writeError(w, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}), false)
	}
	if stopper != nil {
		s.Handle("POST /pods/{namespace}/{name}/stop", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			moved, err := stopper.StopPod(r.PathValue("namespace"), r.PathValue("name"))
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"manifest": moved})
		}), false)
	}
}
