// Package stats reads resource usage — the node's from the kernel, the
// containers' from the CRI runtime — and serves it as the kubelet's
// resource metrics (GET /metrics/resource), which metrics-server scrapes
// for `kubectl top` and the autoscalers.
package stats

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Runtime is the part of the CRI runtime service the collector reads.
type Runtime interface {
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
}

// The kubelet's resource metrics, by name and help text.
var (
	nodeCPU = prometheus.NewDesc("node_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the node in core-seconds", nil, nil)
	nodeMemory = prometheus.NewDesc("node_memory_working_set_bytes",
		"Current working set of the node in bytes", nil, nil)
	containerCPU = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the container in core-seconds", []string{"container", "pod", "namespace"}, nil)
	containerMemory = prometheus.NewDesc("container_memory_working_set_bytes",
		"Current working set of the container in bytes", []string{"container", "pod", "namespace"}, nil)
	containerStart = prometheus.NewDesc("container_start_time_seconds",
		"Start time of the container since unix epoch in seconds", []string{"container", "pod", "namespace"}, nil)
	podCPU = prometheus.NewDesc("pod_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the pod in core-seconds", []string{"pod", "namespace"}, nil)
	podMemory = prometheus.NewDesc("pod_memory_working_set_bytes",
		"Current working set of the pod in bytes", []string{"pod", "namespace"}, nil)
	scrapeError = prometheus.NewDesc("scrape_error",
		"1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
)

// Collector gathers the resource metrics at each scrape.
type Collector struct {
	rt Runtime
	// selector keeps to the containers this knode made.
	selector map[string]string
	timeout  time.Duration
	// root is where /proc and /sys are found (a test's directory).
	root string
}

// NewCollector reads the containers labelled with selector.
func NewCollector(rt Runtime, selector map[string]string, timeout time.Duration) *Collector {
	return &Collector{rt: rt, selector: selector, timeout: timeout, root: "/"}
}

// Registry is a registry holding only the resource metrics.
func (c *Collector) Registry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(c)
	return r
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodeCPU, nodeMemory, containerCPU, containerMemory, containerStart, podCPU, podMemory, scrapeError} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Samples carry the time they were
// read, as the kubelet's do: metrics-server computes rates from them.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if cpu, err := c.nodeCPUSeconds(); err == nil {
		ch <- prometheus.NewMetricWithTimestamp(now, prometheus.MustNewConstMetric(nodeCPU, prometheus.CounterValue, cpu))
	}
	if ws, err := c.nodeWorkingSet(); err == nil {
		ch <- prometheus.NewMetricWithTimestamp(now, prometheus.MustNewConstMetric(nodeMemory, prometheus.GaugeValue, float64(ws)))
	}
	failed := 0.0
	if err := c.collectContainers(ch); err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(scrapeError, prometheus.GaugeValue, failed)
}

type podKey struct{ name, namespace string }

type podUsage struct {
	cpu, memory float64
	cpuAt       time.Time
	memoryAt    time.Time
}

func (c *Collector) collectContainers(ch chan<- prometheus.Metric) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	running, err := c.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: c.selector,
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	started := map[string]time.Time{}
	for _, ct := range running {
		started[ct.Id] = time.Unix(0, ct.CreatedAt)
	}
	all, err := c.rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{LabelSelector: c.selector})
	if err != nil {
		return fmt.Errorf("list container stats: %w", err)
	}
	pods := map[podKey]*podUsage{}
	for _, st := range all {
		attr := st.GetAttributes()
		start, ok := started[attr.GetId()]
		if !ok {
			continue // only running containers, as the kubelet reports
		}
		name, pod, ns := attr.GetMetadata().GetName(), attr.GetLabels()["io.kubernetes.pod.name"], attr.GetLabels()["io.kubernetes.pod.namespace"]
		key := podKey{pod, ns}
		if pods[key] == nil {
			pods[key] = &podUsage{}
		}
		usage := pods[key]
		ch <- prometheus.MustNewConstMetric(containerStart, prometheus.GaugeValue, float64(start.UnixNano())/1e9, name, pod, ns)
		if cpu := st.GetCpu(); cpu != nil && cpu.GetUsageCoreNanoSeconds() != nil {
			at := time.Unix(0, cpu.GetTimestamp())
			v := float64(cpu.GetUsageCoreNanoSeconds().GetValue()) / 1e9
			ch <- prometheus.NewMetricWithTimestamp(at, prometheus.MustNewConstMetric(containerCPU, prometheus.CounterValue, v, name, pod, ns))
			usage.cpu += v
			usage.cpuAt = later(usage.cpuAt, at)
		}
		if mem := st.GetMemory(); mem != nil && mem.GetWorkingSetBytes() != nil {
			at := time.Unix(0, mem.GetTimestamp())
			v := float64(mem.GetWorkingSetBytes().GetValue())
			ch <- prometheus.NewMetricWithTimestamp(at, prometheus.MustNewConstMetric(containerMemory, prometheus.GaugeValue, v, name, pod, ns))
			usage.memory += v
			usage.memoryAt = later(usage.memoryAt, at)
		}
	}
	// A pod's usage is its containers' (the sandbox's pause process is
	// negligible).
	for key, u := range pods {
		if !u.cpuAt.IsZero() {
			ch <- prometheus.NewMetricWithTimestamp(u.cpuAt, prometheus.MustNewConstMetric(podCPU, prometheus.CounterValue, u.cpu, key.name, key.namespace))
		}
		if !u.memoryAt.IsZero() {
			ch <- prometheus.NewMetricWithTimestamp(u.memoryAt, prometheus.MustNewConstMetric(podMemory, prometheus.GaugeValue, u.memory, key.name, key.namespace))
		}
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// nodeCPUSeconds is the CPU time the whole machine spent working: the root
// cgroup's usage on cgroup v2, else the non-idle time in /proc/stat.
func (c *Collector) nodeCPUSeconds() (float64, error) {
	if v, err := readKeyed(filepath.Join(c.root, "sys/fs/cgroup/cpu.stat"), "usage_usec"); err == nil {
		return float64(v) / 1e6, nil
	}
	data, err := os.ReadFile(filepath.Join(c.root, "proc/stat"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat: %q", line)
	}
	var busy uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already in user time
			break
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		busy += n
	}
	const userHZ = 100 // the kernel's USER_HZ on Linux
	return float64(busy) / userHZ, nil
}

// nodeWorkingSet is memory in use less what the kernel can drop at once
// (inactive file pages), the kubelet's working set for the node.
func (c *Collector) nodeWorkingSet() (uint64, error) {
	f, err := os.Open(filepath.Join(c.root, "proc/meminfo"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	kib := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 {
			n, _ := strconv.ParseUint(fields[1], 10, 64)
			kib[strings.TrimSuffix(fields[0], ":")] = n
		}
	}
	total, free, inactive := kib["MemTotal"], kib["MemFree"], kib["Inactive(file)"]
	if total == 0 {
		return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
	}
	used := total - min(free, total)
	return (used - min(inactive, used)) * 1024, nil
}

// readKeyed reads "key value" lines (cgroup stat files) for one key.
func readKeyed(path, key string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}
