// Package server is knode's kubelet-compatible HTTPS API: TLS, the
// kubelet's authentication and authorization, and one file per endpoint.
// Handlers only ask services (interfaces defined here) for answers.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apiserver/pkg/authentication/authenticator"

	"knode.io/knode/internal/metrics"
)

// Pods is what the API reads about pods.
type Pods interface {
	// Pods returns the managed pods with live status.
	Pods() []*v1.Pod
	// GetPod finds one managed pod.
	GetPod(namespace, name string) (*v1.Pod, bool)
	// RunningPods is the runtime's view of pods.
	RunningPods() []*v1.Pod
	// PodsVersion changes whenever Pods would answer differently.
	PodsVersion() uint64
}

// Logs streams a container's CRI log file.
type Logs interface {
	ReadLogs(ctx context.Context, containerID string, opts *v1.PodLogOptions, stdout, stderr io.Writer) error
}

// HealthCheck is one named /healthz check.
type HealthCheck struct {
	Name  string
	Check func() error
}

// Config is everything the server needs.
type Config struct {
	NodeName     string
	Address      string
	Port         int32
	ReadOnlyPort int32
	TLS          tls.Certificate
	// Authenticator verifies client certificates against the client CA (and
	// bearer tokens, and anonymous access when allowed). The TLS handshake
	// only requests a certificate, names no CA and verifies nothing, so a
	// client of another CA gets the kubelet's 401, not a failed handshake.
	Authenticator authenticator.Request
	Authorizer    Authorizer
	Pods          Pods
	Logs          Logs
	Health        []HealthCheck
	Metrics       *metrics.Metrics
	// Devices reports device-plugin resources for GET /devices.
	Devices Devices
	// Receiver and Stopper serve migrations (POST /restores, POST /pods/{ns}/{name}/stop); may be nil.
	Receiver Receiver
	Stopper  PodStopper
	// Checkpoints serves the checkpoint API; nil when the ContainerCheckpoint gate is off.
	Checkpoints Checkpoints
	// Stats serves GET /stats/summary; may be nil.
	Stats Stats
	// ResourceMetrics serves GET /metrics/resource; may be nil.
	ResourceMetrics prometheus.Gatherer
	// Streaming serves exec, attach and port forwarding; may be nil.
	Streaming Streaming
	// Configz returns the effective configuration, secrets redacted.
	Configz func() any
	Log     *slog.Logger
}

// Server serves the secure API and, when configured, the read-only port.
type Server struct {
	cfg      Config
	secure   *http.ServeMux
	readOnly *http.ServeMux
	// patterns are the secure port's routes, each a row of routeAuthz.
	patterns []string
	podsJSON podsCache
}

// New builds the routes.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, secure: http.NewServeMux(), readOnly: http.NewServeMux()}
	s.Handle("/healthz", s.healthz(), true)
	s.Handle("/healthz/{check}", s.healthz(), true)
	s.Handle("GET /pods", http.HandlerFunc(s.pods), true)
	s.Handle("GET /runningpods/", http.HandlerFunc(s.runningPods), false)
	s.Handle("GET /containerLogs/{namespace}/{pod}/{container}", http.HandlerFunc(s.containerLogs), false)
	s.Handle("GET /metrics", s.metricsHandler(), true)
	if cfg.Stats != nil {
		s.Handle("GET /stats/summary", http.HandlerFunc(s.statsSummary), true)
	}
	if cfg.ResourceMetrics != nil {
		s.Handle("GET /metrics/resource", s.resourceMetricsHandler(), true)
	}
	s.Handle("GET /configz", http.HandlerFunc(s.configz), false)
	if cfg.Checkpoints != nil {
		s.installCheckpoints(cfg.Checkpoints)
	}
	s.installMigration(cfg.Receiver, cfg.Stopper)
	if cfg.Devices != nil {
		s.Handle("GET /devices", http.HandlerFunc(s.devices), false)
	}
	if cfg.Streaming != nil {
		s.installStreaming(cfg.Streaming)
	}
	return s
}

// Handle adds a route; readOnly also serves it on the read-only port.
// Patterns are net/http's, with wildcards. On the secure port a request to
// it is authorized as the pattern's row of routeAuthz says; a pattern
// without a row would be checked as the kubelet checks its path (nodes/proxy
// for any path the kubelet does not know), and TestRouteAuthorization fails
// until the row is written.
func (s *Server) Handle(pattern string, h http.Handler, readOnly bool) {
	s.patterns = append(s.patterns, pattern)
	s.secure.Handle(pattern, h)
	if readOnly {
		s.readOnly.Handle(pattern, h)
	}
}

// Handler is the secure API's full chain, for tests and for Serve.
func (s *Server) Handler() http.Handler {
	return s.instrument("readwrite", withAuth(s.cfg.Authenticator, s.cfg.Authorizer, s.cfg.NodeName, s.secure, s.cfg.Log, limitBody(s.secure)))
}

// ReadOnlyHandler is the read-only port's chain: no authentication, as in the kubelet.
func (s *Server) ReadOnlyHandler() http.Handler {
	return s.instrument("readonly", limitBody(s.readOnly))
}

// Serve listens until ctx ends. Listening errors are returned at once.
func (s *Server) Serve(ctx context.Context) error {
	secureLn, err := net.Listen("tcp", net.JoinHostPort(s.cfg.Address, strconv.Itoa(int(s.cfg.Port))))
	if err != nil {
		return fmt.Errorf("listen on the HTTPS port: %w", err)
	}
	servers := []*http.Server{s.httpServer(s.Handler())}
	servers[0].TLSConfig = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{s.cfg.TLS},
		// Verification is the authenticator's: a certificate from another CA
		// gets 401 like the kubelet's, not a failed handshake.
		ClientAuth: tls.RequestClientCert,
	}
	listeners := []net.Listener{tls.NewListener(secureLn, servers[0].TLSConfig)}
	if s.cfg.ReadOnlyPort > 0 {
		roLn, err := net.Listen("tcp", net.JoinHostPort(s.cfg.Address, strconv.Itoa(int(s.cfg.ReadOnlyPort))))
		if err != nil {
			secureLn.Close()
			return fmt.Errorf("listen on the read-only port: %w", err)
		}
		servers = append(servers, s.httpServer(s.ReadOnlyHandler()))
		listeners = append(listeners, roLn)
	}
	errs := make(chan error, len(servers))
	for i := range servers {
		go func(srv *http.Server, ln net.Listener) {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		}(servers[i], listeners[i])
	}
	s.cfg.Log.Info("serving the kubelet API", "address", secureLn.Addr().String(), "readOnlyPort", s.cfg.ReadOnlyPort)
	select {
	case <-ctx.Done():
	case err := <-errs:
		return err
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdownCtx)
	}
	return nil
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler: h,
		// Slow clients cannot hold the server: headers must arrive quickly
		// and are bounded; streaming responses have no write timeout.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelDebug),
	}
}

// maxBodyBytes bounds request bodies; no endpoint takes more.
const maxBodyBytes = 1 << 20

func limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBodyBytes {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		if len(r.URL.RawQuery) > 4096 {
			http.Error(w, "query too long", http.StatusRequestURITooLong)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// instrument records the kubelet's http_* metrics; path is the first
// segment only, so cardinality stays bounded whatever clients send.
func (s *Server) instrument(serverType string, h http.Handler) http.Handler {
	m := s.cfg.Metrics
	if m == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := firstSegment(r.URL.Path)
		longRunning := strconv.FormatBool(r.URL.Query().Get("follow") == "true" || streamingSegments[path])
		method := metricMethod(r.Method)
		start := time.Now()
		inflight := m.HTTPInflight.WithLabelValues(method, path, serverType, longRunning)
		inflight.Inc()
		defer func() {
			inflight.Dec()
			m.HTTPRequests.WithLabelValues(method, path, serverType, longRunning).Inc()
			m.HTTPRequestDuration.WithLabelValues(method, path, serverType, longRunning).Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(w, r)
	})
}

// metricMethod is the method label: the methods HTTP defines, lower case,
// and "other" for the rest. A method is any token the client sends, before
// authentication, so a label taken from it would let anyone who reaches the
// port add series without end (the kubelet buckets them the same way).
func metricMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return strings.ToLower(method)
	}
	return "other"
}

// streamingSegments are sessions that last as long as the client wants.
var streamingSegments = map[string]bool{"exec": true, "attach": true, "portForward": true}

// knownSegments keeps the metrics' path label to a fixed set.
var knownSegments = map[string]bool{
	"healthz": true, "pods": true, "runningpods": true, "containerLogs": true, "metrics": true,
	"configz": true, "checkpoint": true, "checkpoints": true, "restores": true, "stats": true, "logs": true, "devices": true,
	"exec": true, "attach": true, "portForward": true,
}

func firstSegment(path string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if knownSegments[seg] {
		return seg
	}
	if seg == "" {
		return "/"
	}
	return "other"
}
