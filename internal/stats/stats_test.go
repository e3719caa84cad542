package stats

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type fakeRuntime struct {
	containers []*runtimeapi.Container
	stats      []*runtimeapi.ContainerStats
	err        error
}

func (f *fakeRuntime) ListContainers(context.Context, *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	return f.containers, f.err
}

func (f *fakeRuntime) ListContainerStats(context.Context, *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	return f.stats, f.err
}

func containerStats(id, name, pod string, cpuNanos, memory uint64, at time.Time) *runtimeapi.ContainerStats {
	return &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Labels: map[string]string{"io.kubernetes.pod.name": pod, "io.kubernetes.pod.namespace": "default"}},
		Cpu:    &runtimeapi.CpuUsage{Timestamp: at.UnixNano(), UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: cpuNanos}},
		Memory: &runtimeapi.MemoryUsage{Timestamp: at.UnixNano(), WorkingSetBytes: &runtimeapi.UInt64Value{Value: memory}},
	}
}

func fakeProc(t *testing.T) string {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "proc"), 0o755)
	// user nice system idle iowait irq softirq steal guest guest_nice
	os.WriteFile(filepath.Join(root, "proc/stat"), []byte("cpu  1000 0 500 90000 300 0 0 0 200 0\ncpu0 1 2 3\n"), 0o644)
	os.WriteFile(filepath.Join(root, "proc/meminfo"), []byte("MemTotal:       1000 kB\nMemFree:         300 kB\nInactive(file):  200 kB\n"), 0o644)
	return root
}

func gather(t *testing.T, c *Collector) map[string][]*dto.Metric {
	t.Helper()
	families, err := c.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*dto.Metric{}
	for _, f := range families {
		out[f.GetName()] = f.GetMetric()
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestResourceMetrics(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	rt := &fakeRuntime{
		containers: []*runtimeapi.Container{{Id: "a", CreatedAt: at.Add(-time.Hour).UnixNano()}, {Id: "b", CreatedAt: at.UnixNano()}},
		stats: []*runtimeapi.ContainerStats{
			containerStats("a", "app", "web", 2_500_000_000, 10<<20, at),
			containerStats("b", "side", "web", 500_000_000, 5<<20, at),
			containerStats("gone", "old", "web", 9_000_000_000, 1<<30, at), // not running: left out
		},
	}
	c := NewCollector(Options{Runtime: rt, Timeout: time.Second})
	c.root = fakeProc(t)
	m := gather(t, c)

	if got := m["node_cpu_usage_seconds_total"][0].GetCounter().GetValue(); got != 15 {
		t.Errorf("node cpu = %v s, want (1000+500) ticks / 100 = 15", got)
	}
	if got := m["node_memory_working_set_bytes"][0].GetGauge().GetValue(); got != 500*1024 {
		t.Errorf("node working set = %v, want (1000-300-200) KiB", got)
	}
	if len(m["container_cpu_usage_seconds_total"]) != 2 {
		t.Fatalf("containers: %v, want the two running ones", m["container_cpu_usage_seconds_total"])
	}
	for _, cm := range m["container_memory_working_set_bytes"] {
		if label(cm, "pod") != "web" || label(cm, "namespace") != "default" || cm.GetTimestampMs() != at.UnixMilli() {
			t.Errorf("container sample: %v", cm)
		}
	}
	if got := m["pod_cpu_usage_seconds_total"][0].GetCounter().GetValue(); got != 3 {
		t.Errorf("pod cpu = %v, want 2.5 + 0.5", got)
	}
	if got := m["pod_memory_working_set_bytes"][0].GetGauge().GetValue(); got != 15<<20 {
		t.Errorf("pod memory = %v, want 15 MiB", got)
	}
	if got := m["scrape_error"][0].GetGauge().GetValue(); got != 0 {
		t.Errorf("scrape_error = %v", got)
	}

	// The runtime fails: the node's numbers are still there, scrape_error is 1.
	rt.err = errors.New("runtime down")
	m = gather(t, c)
	if m["scrape_error"][0].GetGauge().GetValue() != 1 || len(m["container_cpu_usage_seconds_total"]) != 0 || len(m["node_cpu_usage_seconds_total"]) != 1 {
		t.Fatalf("with the runtime down: %v", m)
	}
}

func TestSummary(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	withUID := func(cs *runtimeapi.ContainerStats, uid string) *runtimeapi.ContainerStats {
		cs.Attributes.Labels["io.kubernetes.pod.uid"] = uid
		return cs
	}
	rt := &fakeRuntime{
		containers: []*runtimeapi.Container{{Id: "a", CreatedAt: at.Add(-time.Hour).UnixNano()}, {Id: "b", CreatedAt: at.UnixNano()}},
		stats: []*runtimeapi.ContainerStats{
			withUID(containerStats("b", "side", "web", 500_000_000, 5<<20, at), "uid-web"),
			withUID(containerStats("a", "app", "web", 2_500_000_000, 10<<20, at), "uid-web"),
		},
	}
	c := NewCollector(Options{Runtime: rt, Timeout: time.Second, NodeName: "n1", RootDir: t.TempDir()})
	c.root = fakeProc(t)
	s := c.Summary(context.Background(), false)
	if s.Node.NodeName != "n1" || *s.Node.CPU.UsageCoreNanoSeconds != 15e9 || s.Node.CPU.UsageNanoCores != nil ||
		*s.Node.Memory.WorkingSetBytes != 500*1024 || s.Node.Fs == nil || *s.Node.Fs.CapacityBytes == 0 {
		t.Fatalf("node: %+v cpu %+v memory %+v fs %+v", s.Node, s.Node.CPU, s.Node.Memory, s.Node.Fs)
	}
	if len(s.Pods) != 1 || s.Pods[0].PodRef.UID != "uid-web" || len(s.Pods[0].Containers) != 2 || s.Pods[0].Containers[0].Name != "app" ||
		*s.Pods[0].CPU.UsageCoreNanoSeconds != 3e9 || *s.Pods[0].Memory.WorkingSetBytes != 15<<20 ||
		!s.Pods[0].StartTime.Time.Equal(at.Add(-time.Hour)) {
		t.Fatalf("pods: %+v", s.Pods)
	}
	// A second summary has the node's rate: 1.5 more CPU seconds.
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(filepath.Join(c.root, "proc/stat"), []byte("cpu  1100 0 550 90000 300 0 0 0 200 0\n"), 0o644)
	s = c.Summary(context.Background(), true)
	if s.Node.CPU.UsageNanoCores == nil || *s.Node.CPU.UsageNanoCores == 0 || s.Node.Fs != nil {
		t.Fatalf("second summary: cpu %+v fs %+v", s.Node.CPU, s.Node.Fs)
	}
}
