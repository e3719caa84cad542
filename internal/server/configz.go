package server

import "net/http"

// configz serves GET /configz: {"kubeletconfig": <effective configuration>}.
func (s *Server) configz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Configz == nil {
		http.NotFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"kubeletconfig": s.cfg.Configz()})
}
