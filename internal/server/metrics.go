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

// resourceMetricsHandler serves GET /metrics/resource: the node's and its
// containers' CPU and memory, with sample times, as metrics-server expects.
func (s *Server) resourceMetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.cfg.ResourceMetrics, promhttp.HandlerOpts{})
}
