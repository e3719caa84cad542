package server

import (
	"net/http"

	"knode.io/knode/internal/devicemanager"
)

// Devices lists device-plugin resources with capacity, health and allocations.
type Devices interface {
	Resources() []devicemanager.Resource
}

// devices serves GET /devices (knode's own; `knode devices` reads it).
func (s *Server) devices(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"items": s.cfg.Devices.Resources()})
}
