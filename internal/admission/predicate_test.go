package admission

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"knode.io/knode/internal/podsource"
)

func testNode() *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"kubernetes.io/hostname": "n1", "disk": "ssd"}},
		Status: v1.NodeStatus{Allocatable: v1.ResourceList{
			v1.ResourceCPU:    resource.MustParse("2"),
			v1.ResourceMemory: resource.MustParse("1Gi"),
			v1.ResourcePods:   resource.MustParse("3"),
			"example.com/gpu": resource.MustParse("1"),
			"hugepages-2Mi":   resource.MustParse("0"),
		}},
	}
}

type fixedNode struct {
	node *v1.Node
	err  error
}

func (f fixedNode) Node() (*v1.Node, error) { return f.node, f.err }

// mkPod is a pod with one container requesting req (name=quantity pairs).
func mkPod(name string, req ...string) *v1.Pod {
	rl := v1.ResourceList{}
	for i := 0; i+1 < len(req); i += 2 {
		rl[v1.ResourceName(req[i])] = resource.MustParse(req[i+1])
	}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{Requests: rl}}}}}
}

func withPort(p *v1.Pod, ip string, port int32) *v1.Pod {
	p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, v1.ContainerPort{ContainerPort: 80, HostPort: port, HostIP: ip})
	return p
}

func static(p *v1.Pod) *v1.Pod {
	p.Annotations = map[string]string{podsource.SourceAnnotation: podsource.File}
	return p
}

func TestPredicates(t *testing.T) {
	noExecute := func(n *v1.Node) *v1.Node {
		n.Spec.Taints = []v1.Taint{{Key: "dedicated", Value: "db", Effect: v1.TaintEffectNoExecute}}
		return n
	}
	noSchedule := func(n *v1.Node) *v1.Node {
		n.Spec.Taints = []v1.Taint{{Key: "dedicated", Value: "db", Effect: v1.TaintEffectNoSchedule}}
		return n
	}
	tests := []struct {
		name        string
		node        *v1.Node
		pod         *v1.Pod
		others      []*v1.Pod
		admit       bool
		reason, msg string
		nodeErr     error
		preempted   []string
	}{
		{name: "fits", node: testNode(), pod: mkPod("a", "cpu", "500m", "memory", "100Mi"), others: []*v1.Pod{mkPod("o", "cpu", "1")}, admit: true},
		{name: "cpu", node: testNode(), pod: mkPod("a", "cpu", "1500m"), others: []*v1.Pod{mkPod("o", "cpu", "1")},
			reason: "OutOfcpu", msg: "Node didn't have enough resource: cpu, requested: 1500, used: 1000, capacity: 2000"},
		{name: "memory", node: testNode(), pod: mkPod("a", "memory", "2Gi"),
			reason: "OutOfmemory", msg: "Node didn't have enough resource: memory, requested: 2147483648, used: 0, capacity: 1073741824"},
		{name: "pods", node: testNode(), pod: mkPod("a"), others: []*v1.Pod{mkPod("o1"), mkPod("o2"), mkPod("o3")},
			reason: "OutOfpods", msg: "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"},
		{name: "extended", node: testNode(), pod: mkPod("a", "example.com/gpu", "1"), others: []*v1.Pod{mkPod("o", "example.com/gpu", "1")},
			reason: "OutOfexample.com/gpu", msg: "Node didn't have enough resource: example.com/gpu, requested: 1, used: 1, capacity: 1"},
		{name: "extended resource the node does not know is not checked", node: testNode(), pod: mkPod("a", "example.com/other", "5"), admit: true},
		{name: "hugepages", node: testNode(), pod: mkPod("a", "hugepages-2Mi", "2Mi", "memory", "10Mi"),
			reason: "OutOfhugepages-2Mi", msg: "Node didn't have enough resource: hugepages-2Mi, requested: 2097152, used: 0, capacity: 0"},
		{name: "nodeSelector", node: testNode(), pod: func() *v1.Pod { p := mkPod("a"); p.Spec.NodeSelector = map[string]string{"disk": "hdd"}; return p }(),
			reason: "NodeAffinity", msg: "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"},
		{name: "nodeSelector matches", node: testNode(), pod: func() *v1.Pod { p := mkPod("a"); p.Spec.NodeSelector = map[string]string{"disk": "ssd"}; return p }(), admit: true},
		{name: "required node affinity", node: testNode(), pod: func() *v1.Pod {
			p := mkPod("a")
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "disk", Operator: v1.NodeSelectorOpIn, Values: []string{"nvme"}}}}}}}}
			return p
		}(), reason: "NodeAffinity", msg: "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"},
		{name: "node name", node: testNode(), pod: func() *v1.Pod { p := mkPod("a"); p.Spec.NodeName = "other"; return p }(),
			reason: "NodeName", msg: "Predicate NodeName failed: node(s) didn't match the requested node name"},
		{name: "host port taken on all addresses", node: testNode(), pod: withPort(mkPod("a"), "127.0.0.1", 8080), others: []*v1.Pod{withPort(mkPod("o"), "", 8080)},
			reason: "NodePorts", msg: "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"},
		{name: "host port on another address", node: testNode(), pod: withPort(mkPod("a"), "127.0.0.1", 8080), others: []*v1.Pod{withPort(mkPod("o"), "127.0.0.2", 8080)}, admit: true},
		{name: "NoExecute taint", node: noExecute(testNode()), pod: mkPod("a"),
			reason: "TaintToleration", msg: "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate"},
		{name: "NoExecute taint tolerated", node: noExecute(testNode()), pod: func() *v1.Pod {
			p := mkPod("a")
			p.Spec.Tolerations = []v1.Toleration{{Key: "dedicated", Operator: v1.TolerationOpEqual, Value: "db", Effect: v1.TaintEffectNoExecute}}
			return p
		}(), admit: true},
		{name: "NoSchedule taint is the scheduler's, not the kubelet's", node: noSchedule(testNode()), pod: mkPod("a"), admit: true},
		{name: "static pods ignore taints", node: noExecute(testNode()), pod: static(mkPod("a")), admit: true},
		{name: "critical pod over a shortage evicts a pod that frees enough", node: testNode(), pod: static(mkPod("a", "cpu", "1500m")),
			others: []*v1.Pod{mkPod("small", "cpu", "500m"), mkPod("big", "cpu", "1500m")}, admit: true, preempted: []string{"big"}},
		{name: "critical by priority", node: testNode(), pod: func() *v1.Pod { p := mkPod("a", "cpu", "1500m"); p.Spec.Priority = ptr.To[int32](2000001000); return p }(),
			others: []*v1.Pod{mkPod("o", "cpu", "1")}, admit: true, preempted: []string{"o"}},
		{name: "critical pod over a shortage nothing can free", node: testNode(), pod: static(mkPod("a", "cpu", "3")),
			reason: "UnexpectedAdmissionError", msg: "Unexpected error while attempting to recover from admission failure: preemption: error finding a set of pods to preempt: no set of running pods found to reclaim resources: [(res: cpu, q: 1000), ]"},
		{name: "critical pod: other critical pods are not preempted", node: testNode(), pod: static(mkPod("a")),
			others: []*v1.Pod{static(mkPod("o1")), static(mkPod("o2")), static(mkPod("o3"))},
			reason: "UnexpectedAdmissionError", msg: "Unexpected error while attempting to recover from admission failure: preemption: error finding a set of pods to preempt: no set of running pods found to reclaim resources: [(res: pods, q: 1), ]"},
		{name: "critical pod failing a non-resource predicate", node: testNode(), pod: func() *v1.Pod {
			p := static(mkPod("a", "cpu", "3"))
			p.Spec.NodeSelector = map[string]string{"disk": "hdd"}
			return p
		}(), reason: "NodeAffinity", msg: "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"},
		{name: "overhead counts", node: testNode(), pod: func() *v1.Pod {
			p := mkPod("a", "cpu", "1500m")
			p.Spec.Overhead = v1.ResourceList{v1.ResourceCPU: resource.MustParse("600m")}
			return p
		}(), reason: "OutOfcpu", msg: "Node didn't have enough resource: cpu, requested: 2100, used: 0, capacity: 2000"},
		{name: "init containers: the larger of init and app", node: testNode(), pod: func() *v1.Pod {
			p := mkPod("a", "cpu", "100m")
			p.Spec.InitContainers = []v1.Container{{Name: "i", Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2500m")}}}}
			return p
		}(), reason: "OutOfcpu", msg: "Node didn't have enough resource: cpu, requested: 2500, used: 0, capacity: 2000"},
		{name: "OS label", node: testNode(), pod: func() *v1.Pod { p := mkPod("a"); p.Labels = map[string]string{"kubernetes.io/os": "windows"}; return p }(),
			reason: "PodOSSelectorNodeLabelDoesNotMatch", msg: "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"},
		{name: "OS field", node: testNode(), pod: func() *v1.Pod { p := mkPod("a"); p.Spec.OS = &v1.PodOS{Name: "windows"}; return p }(),
			reason: "PodOSNotSupported", msg: "Failed to admit pod as the OS field doesn't match node OS"},
		{name: "no node", pod: mkPod("a"), nodeErr: errNoNode, reason: "InvalidNodeInfo", msg: "Kubelet cannot get node info."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			killer := &recordingPreempter{}
			p := &Predicates{Nodes: fixedNode{tc.node, tc.nodeErr}, Preempt: killer}
			ok, reason, msg := Chain{p}.Admit(&Attrs{Pod: tc.pod, OtherPods: tc.others})
			if ok != tc.admit || reason != tc.reason || msg != tc.msg {
				t.Errorf("got (%v, %q, %q), want (%v, %q, %q)", ok, reason, msg, tc.admit, tc.reason, tc.msg)
			}
			if !slices.Equal(killer.names, tc.preempted) {
				t.Errorf("preempted %v, want %v", killer.names, tc.preempted)
			}
		})
	}
}

type nodeErr string

func (e nodeErr) Error() string { return string(e) }

const errNoNode = nodeErr("no node")

func TestChainStopsAtTheFirstRefusal(t *testing.T) {
	var calls []string
	h := func(name string, ok bool) Handler {
		return HandlerFunc(func(*Attrs) (bool, string, string) {
			calls = append(calls, name)
			if ok {
				return true, "", ""
			}
			return false, name + "Reason", name + " says no"
		})
	}
	ok, reason, msg := Chain{h("a", true), h("b", false), h("c", false)}.Admit(&Attrs{Pod: mkPod("p")})
	if ok || reason != "bReason" || msg != "b says no" || len(calls) != 2 {
		t.Fatalf("got (%v, %q, %q) after %v", ok, reason, msg, calls)
	}
	if ok, _, _ := (Chain{}).Admit(&Attrs{Pod: mkPod("p")}); !ok {
		t.Fatal("an empty chain must admit")
	}
}
