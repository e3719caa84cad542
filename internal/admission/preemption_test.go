package admission

import (
	"errors"
	"slices"
	"sort"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// recordingPreempter records the pods it is asked to stop; with fail set
// it fails each, as a kill that times out.
type recordingPreempter struct {
	names []string
	fail  bool
}

func (r *recordingPreempter) Preempt(pod *v1.Pod, reason, message, condition string) error {
	if reason != ReasonPreempting || message != MessagePreempted || condition != ConditionPreempted {
		return errors.New("unexpected reason " + reason + ": " + message)
	}
	r.names = append(r.names, pod.Name)
	if r.fail {
		return errors.New("timeout waiting to kill pod")
	}
	return nil
}

// The kubelet's test pods (pkg/kubelet/preemption/preemption_test.go):
// requests only make a pod Burstable, equal limits Guaranteed.
func preemptionPods() map[string]*v1.Pod {
	res := func(name, cpu, mem string, guaranteed bool) *v1.Pod {
		p := mkPod(name)
		if cpu == "" {
			return p
		}
		rl := v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(mem)}
		p.Spec.Containers[0].Resources.Requests = rl
		if guaranteed {
			p.Spec.Containers[0].Resources.Limits = rl.DeepCopy()
		}
		return p
	}
	pods := map[string]*v1.Pod{
		"tiny":                    res("tiny", "1m", "1Mi", false),
		"bestEffort":              res("bestEffort", "", "", false),
		"cluster-critical":        res("cluster-critical", "100m", "100Mi", false),
		"node-critical":           res("node-critical", "100m", "100Mi", false),
		"burstable":               res("burstable", "100m", "100Mi", false),
		"guaranteed":              res("guaranteed", "100m", "100Mi", true),
		"high-request-burstable":  res("high-request-burstable", "300m", "300Mi", false),
		"high-request-guaranteed": res("high-request-guaranteed", "300m", "300Mi", true),
		"static":                  static(res("static", "100m", "100Mi", false)),
	}
	pods["cluster-critical"].Spec.Priority = ptr.To[int32](2000000000)
	pods["node-critical"].Spec.Priority = ptr.To[int32](2000001000)
	return pods
}

// reqs builds requirements as the kubelet's getAdmissionRequirementList:
// CPU in milli-CPU, memory in Mi, pods; zero ones left out.
func reqs(cpuMilli, memMi, pods int64) requirements {
	var out requirements
	if cpuMilli > 0 {
		out = append(out, requirement{v1.ResourceCPU, cpuMilli})
	}
	if memMi > 0 {
		out = append(out, requirement{v1.ResourceMemory, memMi << 20})
	}
	if pods > 0 {
		out = append(out, requirement{v1.ResourcePods, pods})
	}
	return out
}

func names(pods []*v1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

// TestPodsToPreempt is the kubelet's TestGetPodsToPreempt, case for case
// (v1.37), and the static-pod rules its IsCriticalPod implies.
func TestPodsToPreempt(t *testing.T) {
	all := preemptionPods()
	pick := func(ns ...string) []*v1.Pod {
		var out []*v1.Pod
		for _, n := range ns {
			out = append(out, all[n])
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		preemptor string
		pods      []string
		reqs      requirements
		wantErr   bool
		want      []string
	}{
		{name: "no requirements", preemptor: "cluster-critical", reqs: reqs(0, 0, 0)},
		{name: "no pods", preemptor: "cluster-critical", reqs: reqs(0, 0, 1), wantErr: true},
		{name: "equal pods and resources requirements", preemptor: "cluster-critical", pods: []string{"burstable"}, reqs: reqs(100, 100, 1), want: []string{"burstable"}},
		{name: "higher requirements than pod requests", preemptor: "cluster-critical", pods: []string{"burstable"}, reqs: reqs(200, 200, 2), wantErr: true},
		{name: "choose between bestEffort and burstable", preemptor: "cluster-critical", pods: []string{"burstable", "bestEffort"}, reqs: reqs(0, 0, 1), want: []string{"bestEffort"}},
		{name: "choose between burstable and guaranteed", preemptor: "cluster-critical", pods: []string{"burstable", "guaranteed"}, reqs: reqs(0, 0, 1), want: []string{"burstable"}},
		{name: "choose lower request burstable if it meets requirements", preemptor: "cluster-critical",
			pods: []string{"bestEffort", "high-request-burstable", "burstable"}, reqs: reqs(100, 100, 0), want: []string{"burstable"}},
		{name: "choose higher request burstable if lower does not meet requirements", preemptor: "cluster-critical",
			pods: []string{"bestEffort", "burstable", "high-request-burstable"}, reqs: reqs(150, 150, 0), want: []string{"high-request-burstable"}},
		{name: "multiple pods required", preemptor: "cluster-critical",
			pods: []string{"bestEffort", "burstable", "high-request-burstable", "guaranteed", "high-request-guaranteed"}, reqs: reqs(350, 350, 0),
			want: []string{"burstable", "high-request-burstable"}},
		{name: "evict guaranteed when we have to, and dont evict the extra burstable", preemptor: "cluster-critical",
			pods: []string{"bestEffort", "burstable", "high-request-burstable", "guaranteed", "high-request-guaranteed"}, reqs: reqs(0, 550, 0),
			want: []string{"high-request-burstable", "high-request-guaranteed"}},
		{name: "evict cluster critical pod for node critical pod", preemptor: "node-critical", pods: []string{"cluster-critical"}, reqs: reqs(100, 0, 0),
			want: []string{"cluster-critical"}},
		{name: "can not evict node critical pod for cluster critical pod", preemptor: "cluster-critical", pods: []string{"node-critical"}, reqs: reqs(100, 0, 0), wantErr: true},
		// Static pods are critical (IsCriticalPod): never preempted by
		// priority alone, and preemptors without one.
		{name: "a static pod is not preempted for a critical one", preemptor: "node-critical", pods: []string{"static"}, reqs: reqs(100, 0, 0), wantErr: true},
		{name: "a static preemptor evicts a pod that is not critical", preemptor: "static", pods: []string{"tiny", "burstable"}, reqs: reqs(0, 0, 1), want: []string{"tiny"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := podsToPreempt(all[tc.preemptor], pick(tc.pods...), tc.reqs)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if gotNames := names(got); !slices.Equal(gotNames, tc.want) {
				t.Errorf("preempted %v, want %v", gotNames, tc.want)
			}
		})
	}
}

// TestRequirementsDistanceAndSubtract are the kubelet's
// TestAdmissionRequirementsDistance and TestAdmissionRequirementsSubtract.
func TestRequirementsDistanceAndSubtract(t *testing.T) {
	all := preemptionPods()
	for _, tc := range []struct {
		name string
		reqs requirements
		pod  string
		dist float64
		left requirements
	}{
		{"no requirements", reqs(0, 0, 0), "burstable", 0, reqs(0, 0, 0)},
		{"no requests, some requirements", reqs(100, 100, 1), "bestEffort", 2, reqs(100, 100, 0)},
		{"equal requests and requirements", reqs(100, 100, 1), "burstable", 0, reqs(0, 0, 0)},
		{"higher requests than requirements", reqs(50, 50, 0), "burstable", 0, reqs(0, 0, 0)},
		{"lower requests than requirements", reqs(200, 200, 1), "burstable", 0.5, reqs(100, 100, 0)},
	} {
		if d := tc.reqs.distance(all[tc.pod]); d != tc.dist {
			t.Errorf("%s: distance %v, want %v", tc.name, d, tc.dist)
		}
		if left := tc.reqs.subtract(all[tc.pod]); left.String() != tc.left.String() {
			t.Errorf("%s: left %v, want %v", tc.name, left, tc.left)
		}
	}
}

// TestSmallerRequest is the kubelet's TestSmallerResourceRequest.
func TestSmallerRequest(t *testing.T) {
	pod := func(mem, cpu string) *v1.Pod {
		if mem == "" {
			return mkPod("none")
		}
		return mkPod("p", "memory", mem, "cpu", cpu)
	}
	storage := func(q string) *v1.Pod { return mkPod("s", "storage", q) }
	for _, tc := range []struct {
		name string
		a, b *v1.Pod
		want bool
	}{
		{"some requests vs no requests", pod("50Mi", "100m"), pod("", ""), false},
		{"lower memory", pod("50Mi", "100m"), pod("200Mi", "100m"), true},
		{"memory before CPU", pod("200Mi", "100m"), pod("50Mi", "200m"), false},
		{"equal requests", pod("50Mi", "100m"), pod("50Mi", "100m"), true},
		{"only memory and CPU count", storage("300Mi"), storage("200Mi"), true},
	} {
		if got := smallerRequest(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPreemptionAtAdmission is the kubelet's TestHandleAdmissionFailure
// through the predicates: a node whose memory is taken by the other pods,
// and a pod that needs 550Mi of it.
func TestPreemptionAtAdmission(t *testing.T) {
	all := preemptionPods()
	node := testNode()
	node.Status.Allocatable[v1.ResourceMemory] = resource.MustParse("1000Mi")
	node.Status.Allocatable[v1.ResourcePods] = resource.MustParse("110")
	// 0 + 100 + 300 + 100 + 300 + 100 (the critical one) = 900Mi used.
	others := []*v1.Pod{all["bestEffort"], all["burstable"], all["high-request-burstable"], all["guaranteed"], all["high-request-guaranteed"], all["cluster-critical"]}
	needs := func(p *v1.Pod) *v1.Pod {
		p = p.DeepCopy()
		p.Name, p.UID = p.Name+"-new", p.UID+"-new"
		p.Spec.Containers[0].Resources = v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("650Mi")}}
		return p
	}
	for _, tc := range []struct {
		name   string
		pod    *v1.Pod
		fail   bool
		admit  bool
		reason string
		want   []string
	}{
		{name: "multiple pods evicted", pod: needs(all["cluster-critical"]), admit: true,
			want: []string{"high-request-burstable", "high-request-guaranteed"}},
		{name: "multiple pods with eviction error: still admitted", pod: needs(all["cluster-critical"]), fail: true, admit: true,
			want: []string{"high-request-burstable", "high-request-guaranteed"}},
		{name: "non-critical pod does not trigger eviction", pod: needs(all["guaranteed"]), reason: ReasonOutOfMemory},
		{name: "critical pod with another failure: only that one", pod: func() *v1.Pod {
			p := needs(all["cluster-critical"])
			p.Spec.NodeSelector = map[string]string{"disk": "hdd"}
			return p
		}(), reason: NodeAffinity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			killer := &recordingPreempter{fail: tc.fail}
			p := &Predicates{Nodes: fixedNode{node: node}, Preempt: killer}
			ok, reason, msg := p.Admit(&Attrs{Pod: tc.pod, OtherPods: others})
			if ok != tc.admit || reason != tc.reason {
				t.Errorf("got (%v, %s %q), want (%v, %s)", ok, reason, msg, tc.admit, tc.reason)
			}
			got := slices.Sorted(slices.Values(killer.names))
			if !slices.Equal(got, tc.want) {
				t.Errorf("preempted %v, want %v", got, tc.want)
			}
		})
	}
}
