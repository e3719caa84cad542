package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves GET /metrics in the Prometheus text format.
func (s *Server) metricsHandler() http.Handler {
	if s.cfg.Metrics == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(s.cfg.Metrics.Registry, promhttp.HandlerOpts{})
}
