// Package metrics defines knode's Prometheus metrics, named as the kubelet
// names them where the concept is the same, so dashboards and alerts built
// for the kubelet work unchanged.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/status"
)

const namespace = "kubelet"

// Metrics holds every collector; one instance per agent, registered on its
// own registry (no global state beyond registration).
type Metrics struct {
	Registry *prometheus.Registry

	RuntimeOperations        *prometheus.CounterVec
	RuntimeOperationsErrors  *prometheus.CounterVec
	RuntimeOperationDuration *prometheus.HistogramVec

	StartedPods           prometheus.Counter
	StartedPodsErrors     prometheus.Counter
	StartedContainers     *prometheus.CounterVec
	StartedContainersErrs *prometheus.CounterVec
	PodStartDuration      prometheus.Histogram

	DevicePluginRegistrations *prometheus.CounterVec
	DevicePluginAllocDuration *prometheus.HistogramVec

	// CheckpointOwnTime is knode's share of a checkpoint request (not the runtime's, not waiting).
	CheckpointOwnTime prometheus.Histogram

	Restores        *prometheus.CounterVec
	RestoreDuration prometheus.Histogram

	// CheckpointsDeleted counts archives removed by retention, by reason (count, age, bytes).
	CheckpointsDeleted *prometheus.CounterVec

	HTTPRequests        *prometheus.CounterVec
	HTTPRequestDuration *prometheus.HistogramVec
	HTTPInflight        *prometheus.GaugeVec

	// APIRequests counts requests to the Kubernetes API server (cluster mode).
	APIRequests *prometheus.CounterVec
}

// New creates and registers knode's metrics.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		RuntimeOperations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "runtime_operations_total",
			Help: "Cumulative number of runtime operations by operation type.",
		}, []string{"operation_type"}),
		RuntimeOperationsErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "runtime_operations_errors_total",
			Help: "Cumulative number of runtime operation errors by operation type.",
		}, []string{"operation_type"}),
		RuntimeOperationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "runtime_operations_duration_seconds",
			Help:    "Duration in seconds of runtime operations. Broken down by operation type.",
			Buckets: prometheus.ExponentialBuckets(.005, 2.5, 14),
		}, []string{"operation_type"}),
		StartedPods: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "started_pods_total",
			Help: "Cumulative number of pods started",
		}),
		StartedPodsErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "started_pods_errors_total",
			Help: "Cumulative number of errors when starting pods",
		}),
		StartedContainers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "started_containers_total",
			Help: "Cumulative number of containers started",
		}, []string{"container_type"}),
		StartedContainersErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "started_containers_errors_total",
			Help: "Cumulative number of errors when starting containers",
		}, []string{"container_type", "code"}),
		PodStartDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "pod_start_duration_seconds",
			Help:    "Duration in seconds from knode seeing a pod for the first time to the pod starting to run",
			Buckets: []float64{0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600},
		}),
		DevicePluginRegistrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "device_plugin_registration_total",
			Help: "Cumulative number of device plugin registrations. Broken down by resource name.",
		}, []string{"resource_name"}),
		DevicePluginAllocDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "device_plugin_alloc_duration_seconds",
			Help:    "Duration in seconds to serve a device plugin Allocation request. Broken down by resource name.",
			Buckets: prometheus.DefBuckets,
		}, []string{"resource_name"}),
		CheckpointOwnTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "knode_checkpoint_own_duration_seconds",
			Help:    "knode's own share of a successful checkpoint request: all but the wait for a slot and the runtime's CheckpointContainer",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		Restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knode_restores_total",
			Help: "Containers restored from checkpoint archives, by result (success or the failure's reason)",
		}, []string{"result"}),
		RestoreDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "knode_restore_duration_seconds",
			Help:    "Duration of successful restores, CreateContainer to StartContainer done",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}),
		CheckpointsDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knode_checkpoint_archives_deleted_total",
			Help: "Checkpoint archives deleted by the retention policy, by reason (count, age, bytes)",
		}, []string{"reason"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "Number of the http requests received since the server started",
		}, []string{"method", "path", "server_type", "long_running"}),
		HTTPRequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_requests_duration_seconds",
			Help:    "Duration in seconds to serve http requests",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "path", "server_type", "long_running"}),
		HTTPInflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "http_inflight_requests",
			Help: "Number of the inflight http requests",
		}, []string{"method", "path", "server_type", "long_running"}),
		// client-go's name, as the kubelet exposes it.
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rest_client_requests_total",
			Help: "Number of HTTP requests to the API server, partitioned by status code, method, and host.",
		}, []string{"code", "method", "host"}),
	}
	m.Registry.MustRegister(
		m.RuntimeOperations, m.RuntimeOperationsErrors, m.RuntimeOperationDuration,
		m.StartedPods, m.StartedPodsErrors, m.StartedContainers, m.StartedContainersErrs, m.PodStartDuration,
		m.HTTPRequests, m.HTTPRequestDuration, m.HTTPInflight, m.CheckpointsDeleted, m.APIRequests,
		m.DevicePluginRegistrations, m.DevicePluginAllocDuration, m.Restores, m.RestoreDuration, m.CheckpointOwnTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// APIRequest counts one request to the API server; code 0 is a request
// that got no answer.
func (m *Metrics) APIRequest(method, host string, code int) {
	c := "<error>"
	if code != 0 {
		c = strconv.Itoa(code)
	}
	m.APIRequests.WithLabelValues(c, method, host).Inc()
}

// AddRunning registers the running pods/containers gauges, read from src at scrape time.
func (m *Metrics) AddRunning(src RunningCounter) {
	m.Registry.MustRegister(&runningCollector{src: src})
}

// SandboxStarted counts a pod sandbox start, as kubelet_started_pods_total does.
func (m *Metrics) SandboxStarted(err error) {
	m.StartedPods.Inc()
	if err != nil {
		m.StartedPodsErrors.Inc()
	}
}

// ContainerStarted counts a container start by type (container, init_container).
func (m *Metrics) ContainerStarted(containerType string, err error) {
	m.StartedContainers.WithLabelValues(containerType).Inc()
	if err != nil {
		m.StartedContainersErrs.WithLabelValues(containerType, errorCode(err)).Inc()
	}
}

// PodRunning observes the time from first seeing a pod to all its containers running.
func (m *Metrics) PodRunning(d time.Duration) { m.PodStartDuration.Observe(d.Seconds()) }

// errorCode is the gRPC status code name of err, the kubelet's "code" label.
func errorCode(err error) string {
	return status.Code(err).String()
}

// ObserveRuntimeOperation records one CRI call.
func (m *Metrics) ObserveRuntimeOperation(op string, start time.Time, err error) {
	m.RuntimeOperations.WithLabelValues(op).Inc()
	m.RuntimeOperationDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		m.RuntimeOperationsErrors.WithLabelValues(op).Inc()
	}
}

// RunningCounter reports what runs now; read at scrape time.
type RunningCounter interface {
	// RunningCounts returns the number of pods with a ready sandbox and the
	// number of containers per CRI state name (created, running, exited, unknown).
	RunningCounts() (pods int, containers map[string]int)
}

type runningCollector struct{ src RunningCounter }

var (
	runningPodsDesc       = prometheus.NewDesc(namespace+"_running_pods", "Number of pods that have a running pod sandbox", nil, nil)
	runningContainersDesc = prometheus.NewDesc(namespace+"_running_containers", "Number of containers currently running", []string{"container_state"}, nil)
)

func (c *runningCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runningPodsDesc
	ch <- runningContainersDesc
}

func (c *runningCollector) Collect(ch chan<- prometheus.Metric) {
	pods, containers := c.src.RunningCounts()
	ch <- prometheus.MustNewConstMetric(runningPodsDesc, prometheus.GaugeValue, float64(pods))
	for _, state := range []string{"created", "running", "exited", "unknown"} {
		ch <- prometheus.MustNewConstMetric(runningContainersDesc, prometheus.GaugeValue, float64(containers[state]), state)
	}
}

// PluginRegistered counts a device plugin registration.
func (m *Metrics) PluginRegistered(resource string) {
	m.DevicePluginRegistrations.WithLabelValues(resource).Inc()
}

// AllocationDone observes one Allocate call to a device plugin.
func (m *Metrics) AllocationDone(resource string, d time.Duration) {
	m.DevicePluginAllocDuration.WithLabelValues(resource).Observe(d.Seconds())
}

// AddDockershimDependents registers knode_dockershim_dependent_pods, read
// from count at scrape time.
func (m *Metrics) AddDockershimDependents(count func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "knode_dockershim_dependent_pods",
		Help: "Pods that mount the Docker socket (or a directory above it) by hostPath",
	}, func() float64 { return float64(count()) }))
}

// RestoreDone counts a restore and, when it worked, how long it took.
func (m *Metrics) RestoreDone(result string, d time.Duration) {
	m.Restores.WithLabelValues(result).Inc()
	if result == "success" {
		m.RestoreDuration.Observe(d.Seconds())
	}
}
