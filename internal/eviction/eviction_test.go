package eviction

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestParseHard(t *testing.T) {
	tests := []struct {
		spec, want, err string
	}{
		{DefaultHard, "memory.available<100Mi nodefs.available<10% nodefs.inodesFree<5%", ""},
		{"memory.available<1Gi", "memory.available<1Gi", ""},
		{"memory.available=1Gi", "", "want signal<value"},
		{"imagefs.available<15%", "", ""}, // the kubelet's, not measured: skipped
		{"memory.avail<1Gi", "", "unknown"},
		{"nodefs.available<150%", "", "between 0 and 100"},
		{"memory.available<lots", "", "want a quantity"},
	}
	for _, tt := range tests {
		got, err := ParseHard(tt.spec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.spec, err, tt.err)
			}
			continue
		}
		var names []string
		for _, th := range got {
			names = append(names, th.String())
		}
		// Parsed thresholds are sorted by signal.
		want := strings.Fields(tt.want)
		sort.Strings(want)
		if err != nil || strings.Join(names, " ") != strings.Join(want, " ") {
			t.Errorf("%q: %v %v, want %v", tt.spec, names, err, want)
		}
	}
}

func meminfo(t *testing.T, availableKiB int) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "meminfo"), []byte("MemTotal: 1048576 kB\nMemFree: 1000 kB\nMemAvailable: "+strconv.Itoa(availableKiB)+" kB\n"), 0o644)
	return dir
}

func TestPressure(t *testing.T) {
	thresholds, _ := ParseHard("memory.available<100Mi,nodefs.available<0%")
	for _, tt := range []struct {
		availableKiB int
		want         bool
	}{{204800, false}, {102399, true}} {
		m := New(thresholds, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		m.proc = meminfo(t, tt.availableKiB)
		if got, err := m.MemoryPressure(); err != nil || got != tt.want {
			t.Errorf("%d KiB available: pressure %v %v, want %v", tt.availableKiB, got, err, tt.want)
		}
		if got, err := m.DiskPressure(); err != nil || got {
			t.Errorf("disk pressure %v %v with a 0%% threshold", got, err)
		}
	}
	// Every byte of the filesystem as threshold: disk pressure.
	all, _ := ParseHard("nodefs.available<100%")
	m := New(all, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.proc = meminfo(t, 1<<20)
	if got, err := m.DiskPressure(); err != nil || !got {
		t.Errorf("disk pressure %v %v with a 100%% threshold", got, err)
	}
}

type fakePods struct {
	pods    []*v1.Pod
	evicted map[types.UID]string
	// disruptions are the DisruptionTarget messages asked for.
	disruptions map[types.UID]string
}

func (f *fakePods) Pods() []*v1.Pod { return f.pods }

func (f *fakePods) Evict(uid types.UID, message, disruption string) bool {
	f.evicted[uid] = message
	if disruption != "" {
		if f.disruptions == nil {
			f.disruptions = map[types.UID]string{}
		}
		f.disruptions[uid] = disruption
	}
	return true
}

type fakeUsage map[types.UID]uint64

func (u fakeUsage) PodMemory(context.Context) (map[types.UID]uint64, error) { return u, nil }

func pod(name string, priority int32, requestMiB int64, static bool) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name)},
		Spec: v1.PodSpec{Priority: &priority, Containers: []v1.Container{{Name: "c"}}}}
	if requestMiB > 0 {
		p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceMemory: *resource.NewQuantity(requestMiB<<20, resource.BinarySI)}
	}
	if static {
		p.Annotations = map[string]string{"kubernetes.io/config.source": "file"}
	}
	return p
}

func TestEvictionOrder(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name  string
		pods  []*v1.Pod
		usage fakeUsage
		want  types.UID
	}{
		{"over its request goes before under", []*v1.Pod{pod("under", 0, 500, false), pod("over", 0, 10, false)},
			fakeUsage{"under": 400 * mib, "over": 20 * mib}, "over"},
		{"then the lowest priority", []*v1.Pod{pod("high", 1000, 0, false), pod("low", 0, 0, false)},
			fakeUsage{"high": 900 * mib, "low": 10 * mib}, "low"},
		{"then the most above its request", []*v1.Pod{pod("small", 0, 0, false), pod("big", 0, 0, false)},
			fakeUsage{"small": 10 * mib, "big": 500 * mib}, "big"},
		{"static and critical pods are never evicted", []*v1.Pod{pod("static", 0, 0, true), pod("critical", CriticalPriority, 0, false)},
			fakeUsage{"static": 900 * mib, "critical": 900 * mib}, ""},
	}
	thresholds, _ := ParseHard("memory.available<100Mi")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(thresholds, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			m.proc = meminfo(t, 50*1024) // 50 MiB available: under pressure
			pods := &fakePods{pods: tt.pods, evicted: map[types.UID]string{}}
			if got := m.Synchronize(context.Background(), pods, tt.usage); got != tt.want {
				t.Fatalf("evicted %q, want %q", got, tt.want)
			}
			if tt.want != "" && (len(pods.evicted) != 1 || !strings.HasPrefix(pods.evicted[tt.want], "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi.")) {
				t.Fatalf("evictions %v", pods.evicted)
			}
			// A node-pressure eviction gives the pod the kubelet's
			// DisruptionTarget condition with the eviction's message.
			if tt.want != "" && pods.disruptions[tt.want] != pods.evicted[tt.want] {
				t.Fatalf("disruption condition %q, want the eviction message %q", pods.disruptions[tt.want], pods.evicted[tt.want])
			}
		})
	}
	// Without pressure nothing is evicted.
	m := New(thresholds, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.proc = meminfo(t, 500*1024)
	pods := &fakePods{pods: []*v1.Pod{pod("a", 0, 0, false)}, evicted: map[types.UID]string{}}
	if got := m.Synchronize(context.Background(), pods, fakeUsage{"a": 900 * mib}); got != "" {
		t.Fatalf("evicted %q without pressure", got)
	}
}
