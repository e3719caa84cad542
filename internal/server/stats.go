package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Stats answers the kubelet's stats summary.
type Stats interface {
	Summary(ctx context.Context, onlyCPUAndMemory bool) *statsapi.Summary
}

// statsSummary serves GET /stats/summary[?only_cpu_and_memory=true], the
// kubelet's v1alpha1 summary that monitoring agents read.
func (s *Server) statsSummary(w http.ResponseWriter, r *http.Request) {
	only := false
	if v := r.URL.Query().Get("only_cpu_and_memory"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, badRequest("invalid only_cpu_and_memory "+strconv.Quote(v)+": want true or false"))
			return
		}
		only = b
	}
	body, err := json.Marshal(s.cfg.Stats.Summary(r.Context(), only))
	if err != nil {
		writeError(w, internal("encode the stats summary: "+err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
