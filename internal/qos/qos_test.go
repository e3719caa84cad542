package qos

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"knode.io/knode/internal/podsource"
)

// res builds requirements from "cpu=100m" style pairs for requests and limits.
func res(requests, limits map[string]string) v1.ResourceRequirements {
	out := v1.ResourceRequirements{}
	if requests != nil {
		out.Requests = v1.ResourceList{}
		for k, v := range requests {
			out.Requests[v1.ResourceName(k)] = resource.MustParse(v)
		}
	}
	if limits != nil {
		out.Limits = v1.ResourceList{}
		for k, v := range limits {
			out.Limits[v1.ResourceName(k)] = resource.MustParse(v)
		}
	}
	return out
}

func pod(containers ...v1.ResourceRequirements) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u1"}}
	for i, r := range containers {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: string(rune('a' + i)), Resources: r})
	}
	return p
}

type rl = map[string]string

func TestClass(t *testing.T) {
	tests := []struct {
		name string
		pod  *v1.Pod
		want v1.PodQOSClass
	}{
		{"nothing", pod(v1.ResourceRequirements{}), v1.PodQOSBestEffort},
		{"only ephemeral storage", pod(res(rl{"ephemeral-storage": "1Gi"}, nil)), v1.PodQOSBestEffort},
		{"limits equal requests", pod(res(rl{"cpu": "1", "memory": "1Gi"}, rl{"cpu": "1", "memory": "1Gi"})), v1.PodQOSGuaranteed},
		{"limits only (requests default to them)", pod(res(nil, rl{"cpu": "1", "memory": "1Gi"})), v1.PodQOSGuaranteed},
		{"request below limit", pod(res(rl{"cpu": "500m", "memory": "1Gi"}, rl{"cpu": "1", "memory": "1Gi"})), v1.PodQOSBurstable},
		{"cpu only", pod(res(rl{"cpu": "1"}, rl{"cpu": "1"})), v1.PodQOSBurstable},
		{"guaranteed and besteffort containers", pod(res(nil, rl{"cpu": "1", "memory": "1Gi"}), v1.ResourceRequirements{}), v1.PodQOSBurstable},
		{"two guaranteed", pod(res(nil, rl{"cpu": "1", "memory": "1Gi"}), res(nil, rl{"cpu": "2", "memory": "2Gi"})), v1.PodQOSGuaranteed},
		{"pod-level resources decide", func() *v1.Pod {
			p := pod(v1.ResourceRequirements{})
			r := res(rl{"cpu": "1", "memory": "1Gi"}, rl{"cpu": "1", "memory": "1Gi"})
			p.Spec.Resources = &r
			return p
		}(), v1.PodQOSGuaranteed},
		{"init container counts", func() *v1.Pod {
			p := pod(res(nil, rl{"cpu": "1", "memory": "1Gi"}))
			p.Spec.InitContainers = []v1.Container{{Name: "i"}}
			return p
		}(), v1.PodQOSBurstable},
	}
	for _, tc := range tests {
		if got := Class(tc.pod); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestOOMScoreAdj(t *testing.T) {
	const capacity = 10 << 30
	burstable := pod(res(rl{"memory": "1Gi"}, nil), res(rl{"memory": "5Gi"}, nil), res(rl{"cpu": "1"}, nil))
	sidecar := pod(res(rl{"memory": "1Gi"}, nil))
	sidecar.Spec.InitContainers = []v1.Container{{Name: "side", RestartPolicy: ptr.To(v1.ContainerRestartPolicyAlways), Resources: res(rl{"memory": "100Mi"}, nil)}}
	nodeCritical := pod(v1.ResourceRequirements{})
	nodeCritical.Spec.PriorityClassName = "system-node-critical"
	nodeCritical.Annotations = map[string]string{podsource.SourceAnnotation: podsource.File}
	notCriticalEnough := pod(v1.ResourceRequirements{})
	notCriticalEnough.Spec.PriorityClassName = "system-node-critical"
	huge := pod(res(rl{"memory": "20Gi"}, nil))
	tests := []struct {
		name string
		pod  *v1.Pod
		c    *v1.Container
		want int64
	}{
		{"guaranteed", pod(res(nil, rl{"cpu": "1", "memory": "1Gi"})), nil, -997},
		{"besteffort", pod(v1.ResourceRequirements{}), nil, 1000},
		{"burstable 1Gi of 10Gi", burstable, &burstable.Spec.Containers[0], 900},
		{"burstable 5Gi of 10Gi", burstable, &burstable.Spec.Containers[1], 500},
		{"burstable without a memory request", burstable, &burstable.Spec.Containers[2], 999},
		{"burstable over capacity", huge, nil, 3},
		{"sidecar no higher than the smallest regular container", sidecar, &sidecar.Spec.InitContainers[0], 900},
		{"static system-node-critical", nodeCritical, nil, -997},
		{"system-node-critical class on an API pod without the priority", notCriticalEnough, nil, 1000},
	}
	for _, tc := range tests {
		c := tc.c
		if c == nil {
			c = &tc.pod.Spec.Containers[0]
		}
		if got := OOMScoreAdj(tc.pod, c, capacity); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestPodResources(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	i := func(v int64) *int64 { return &v }
	tests := []struct {
		name                  string
		pod                   *v1.Pod
		shares                *uint64
		quota                 *int64
		memory                *int64
		parent                string
		hugePages             map[int64]int64
		overheadCPU, overhead string
	}{
		{name: "guaranteed", pod: pod(res(nil, rl{"cpu": "250m", "memory": "128Mi"}), res(nil, rl{"cpu": "250m", "memory": "128Mi"})),
			shares: u(512), quota: i(50000), memory: i(256 << 20), parent: "/kubepods/podu1"},
		{name: "burstable, every container limits memory", pod: pod(res(rl{"cpu": "100m"}, rl{"memory": "64Mi"}), res(rl{"cpu": "200m", "memory": "10Mi"}, rl{"memory": "32Mi"})),
			shares: u(307), memory: i(96 << 20), parent: "/kubepods/burstable/podu1"},
		{name: "burstable, one container without limits", pod: pod(res(rl{"cpu": "100m"}, rl{"memory": "64Mi", "cpu": "1"}), res(rl{"cpu": "200m"}, nil)),
			shares: u(307), parent: "/kubepods/burstable/podu1"},
		{name: "besteffort", pod: pod(v1.ResourceRequirements{}), shares: u(2), parent: "/kubepods/besteffort/podu1"},
		{name: "overhead added", pod: func() *v1.Pod {
			p := pod(res(nil, rl{"cpu": "1", "memory": "1Gi"}))
			p.Spec.Overhead = v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("120Mi")}
			return p
		}(), shares: u(1280), quota: i(125000), memory: i(1<<30 + 120<<20), parent: "/kubepods/podu1"},
		{name: "huge pages", pod: pod(res(nil, rl{"cpu": "1", "memory": "1Gi", "hugepages-2Mi": "10Mi"})),
			shares: u(1024), quota: i(100000), memory: i(1 << 30), parent: "/kubepods/podu1", hugePages: map[int64]int64{2 << 20: 10 << 20}},
	}
	for _, tc := range tests {
		r := PodResources(tc.pod)
		eqU := func(a, b *uint64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
		eqI := func(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
		if !eqU(r.CPUShares, tc.shares) || !eqI(r.CPUQuota, tc.quota) || !eqI(r.Memory, tc.memory) {
			t.Errorf("%s: shares %v quota %v memory %v", tc.name, deref(r.CPUShares), deref(r.CPUQuota), deref(r.Memory))
		}
		if (r.CPUQuota != nil) != (r.CPUPeriod != nil) || (r.CPUPeriod != nil && *r.CPUPeriod != QuotaPeriod) {
			t.Errorf("%s: period %v with quota %v", tc.name, deref(r.CPUPeriod), deref(r.CPUQuota))
		}
		if len(r.HugePages) != len(tc.hugePages) {
			t.Errorf("%s: huge pages %v, want %v", tc.name, r.HugePages, tc.hugePages)
		}
		for k, v := range tc.hugePages {
			if r.HugePages[k] != v {
				t.Errorf("%s: huge pages %v, want %v", tc.name, r.HugePages, tc.hugePages)
			}
		}
		if got := PodCgroup("/", tc.pod); got != tc.parent {
			t.Errorf("%s: cgroup %s, want %s", tc.name, got, tc.parent)
		}
	}
	if got := PodCgroup("/node-a", pod(v1.ResourceRequirements{})); got != "/node-a/kubepods/besteffort/podu1" {
		t.Errorf("under a cgroup root: %s", got)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestMilliCPU(t *testing.T) {
	for _, tc := range []struct {
		milli  int64
		shares uint64
		quota  int64
	}{{0, 2, 0}, {1, 2, 1000}, {5, 5, 1000}, {100, 102, 10000}, {1000, 1024, 100000}, {300000, 262144, 30000000}} {
		if s := MilliCPUToShares(tc.milli); s != tc.shares {
			t.Errorf("shares(%d) = %d, want %d", tc.milli, s, tc.shares)
		}
		if q := MilliCPUToQuota(tc.milli, QuotaPeriod); q != tc.quota {
			t.Errorf("quota(%d) = %d, want %d", tc.milli, q, tc.quota)
		}
	}
}
