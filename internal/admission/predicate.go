package admission

import (
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"knode.io/knode/internal/podsource"
)

// The kubelet's admission reasons (pkg/kubelet/lifecycle/predicate.go) and
// the scheduler plugin names and reasons its GeneralPredicates report.
const (
	ReasonInvalidNodeInfo   = "InvalidNodeInfo"
	ReasonOSSelector        = "PodOSSelectorNodeLabelDoesNotMatch"
	ReasonOSNotSupported    = "PodOSNotSupported"
	ReasonOutOfCPU          = "OutOfcpu"
	ReasonOutOfMemory       = "OutOfmemory"
	ReasonOutOfEphemeral    = "OutOfephemeral-storage"
	ReasonOutOfPods         = "OutOfpods"
	insufficientPrefix      = "OutOf"
	NodeAffinity            = "NodeAffinity"
	NodeName                = "NodeName"
	NodePorts               = "NodePorts"
	TaintToleration         = "TaintToleration"
	errReasonNodeAffinity   = "node(s) didn't match Pod's node affinity/selector"
	errReasonNodeName       = "node(s) didn't match the requested node name"
	errReasonNodePorts      = "node(s) didn't have free ports for the requested pod ports"
	errReasonTaintToleraton = "node(s) had taints that the pod didn't tolerate"
)

// NodeSource gives the node as admission sees it: its labels and taints
// (in cluster mode the Node object's) and its allocatable resources.
type NodeSource interface {
	Node() (*v1.Node, error)
}

// Predicates is the kubelet's predicate admit handler: the pod's OS, then
// GeneralPredicates — resources against allocatable less what the other
// admitted pods request, required node affinity and nodeSelector, the
// node name, host ports — then NoExecute taints (static pods exempt).
//
// A critical pod whose only failures are resource shortages is not
// refused: as the kubelet's CriticalPodAdmissionHandler, the handler stops
// the pods it may preempt that free enough (preemption.go) and admits it;
// when no set of pods does, it is refused with UnexpectedAdmissionError.
// Admit then waits for those pods to stop, as the kubelet's does.
type Predicates struct {
	Nodes NodeSource
	// Preempt stops the pods chosen to make room for a critical pod; with
	// none, no pod can be preempted.
	Preempt Preempter
	// Log is told of preemptions; may be nil.
	Log *slog.Logger
}

func (p *Predicates) logger() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// Admit runs the predicates.
func (p *Predicates) Admit(attrs *Attrs) (bool, string, string) {
	node, err := p.Nodes.Node()
	if err != nil || node == nil {
		return false, ReasonInvalidNodeInfo, "Kubelet cannot get node info."
	}
	pod := attrs.Pod
	if os, ok := pod.Labels[v1.LabelOSStable]; ok && os != runtime.GOOS {
		return false, ReasonOSSelector, "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"
	}
	if pod.Spec.OS != nil && string(pod.Spec.OS.Name) != runtime.GOOS {
		return false, ReasonOSNotSupported, "Failed to admit pod as the OS field doesn't match node OS"
	}
	failures := generalPredicates(pod, node, attrs.OtherPods)
	if len(failures) == 0 {
		return true, "", ""
	}
	if IsCritical(pod) {
		// Shortages are no reason to refuse a critical pod: the kubelet
		// reports only its other failures, if any, and otherwise makes room.
		var others []failure
		for _, f := range failures {
			if f.resource == "" {
				others = append(others, f)
			}
		}
		if len(others) == 0 {
			return p.preempt(pod, failures, attrs.OtherPods)
		}
		failures = others
	}
	return false, failures[0].reason(), failures[0].message()
}

// failure is one failed predicate: an insufficient resource, or a named
// predicate with its scheduler reason.
type failure struct {
	resource                  v1.ResourceName
	requested, used, capacity int64
	predicate, desc           string
}

func (f failure) reason() string {
	switch f.resource {
	case "":
		return f.predicate
	case v1.ResourceCPU:
		return ReasonOutOfCPU
	case v1.ResourceMemory:
		return ReasonOutOfMemory
	case v1.ResourceEphemeralStorage:
		return ReasonOutOfEphemeral
	case v1.ResourcePods:
		return ReasonOutOfPods
	}
	return insufficientPrefix + string(f.resource)
}

func (f failure) message() string {
	if f.resource == "" {
		return fmt.Sprintf("Predicate %s failed: %s", f.predicate, f.desc)
	}
	return fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
		f.resource, f.requested, f.used, f.capacity)
}

// generalPredicates returns every failure in the kubelet's order.
func generalPredicates(pod *v1.Pod, node *v1.Node, others []*v1.Pod) []failure {
	out := fits(pod, node, others)
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); !ok {
		out = append(out, failure{predicate: NodeAffinity, desc: errReasonNodeAffinity})
	}
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node.Name {
		out = append(out, failure{predicate: NodeName, desc: errReasonNodeName})
	}
	if !portsFit(pod, others) {
		out = append(out, failure{predicate: NodePorts, desc: errReasonNodePorts})
	}
	// The kubelet checks only NoExecute taints, and not for static pods.
	if !podsource.IsStatic(pod) {
		_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, pod.Spec.Tolerations,
			func(t *v1.Taint) bool { return t.Effect == v1.TaintEffectNoExecute }, false)
		if untolerated {
			out = append(out, failure{predicate: TaintToleration, desc: errReasonTaintToleraton})
		}
	}
	return out
}

// Requests is what a pod asks of the node, as the scheduler counts it:
// the larger of its init containers' and its containers' (with sidecars)
// requests, plus its overhead.
func Requests(pod *v1.Pod) v1.ResourceList {
	return resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
}

// fits is the scheduler's noderesources.Fits as the kubelet calls it:
// the pod count, then cpu, memory, ephemeral-storage and the extended
// resources (in name order) against allocatable less the other pods'
// requests. An extended resource the node does not have at all is not
// checked, as the kubelet drops it before (cluster-level resources).
func fits(pod *v1.Pod, node *v1.Node, others []*v1.Pod) []failure {
	alloc := node.Status.Allocatable
	var out []failure
	maxPods := alloc.Pods().Value()
	if int64(len(others))+1 > maxPods {
		out = append(out, failure{resource: v1.ResourcePods, requested: 1, used: int64(len(others)), capacity: maxPods})
	}
	want := Requests(pod)
	used := v1.ResourceList{}
	for _, o := range others {
		for name, q := range Requests(o) {
			sum := used[name]
			sum.Add(q)
			used[name] = sum
		}
	}
	// Summed as quantities and read saturated: as int64s, a request summed
	// past int64 (two containers asking 5Ei each) or a CPU count whose
	// milli-value overflows would wrap negative, fit, and make every later
	// pod fit too.
	short := func(name v1.ResourceName) (failure, bool) {
		milli := name == v1.ResourceCPU
		w, u, a := Saturated(want[name], milli), Saturated(used[name], milli), Saturated(alloc[name], milli)
		if w > 0 && w > a-u {
			return failure{resource: name, requested: w, used: u, capacity: a}, true
		}
		return failure{}, false
	}
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage} {
		if f, ok := short(name); ok {
			out = append(out, f)
		}
	}
	var scalars []v1.ResourceName
	for name := range want {
		if isScalar(name) {
			scalars = append(scalars, name)
		}
	}
	sort.Slice(scalars, func(i, j int) bool { return scalars[i] < scalars[j] })
	for _, name := range scalars {
		if _, known := alloc[name]; !known && isExtended(name) {
			continue
		}
		if f, ok := short(name); ok {
			out = append(out, f)
		}
	}
	return out
}

// Saturated is a quantity in units (milli-units for CPU), rounded up as the
// scheduler reads it, saturated at math.MaxInt64; a negative one (a
// static pod's manifest is not validated by the API server) counts as 0.
func Saturated(q resource.Quantity, milli bool) int64 {
	limit := resource.NewQuantity(math.MaxInt64, resource.DecimalSI)
	if milli {
		limit = resource.NewMilliQuantity(math.MaxInt64, resource.DecimalSI)
	}
	switch {
	case q.Sign() <= 0:
		return 0
	case q.Cmp(*limit) >= 0:
		return math.MaxInt64
	case milli:
		return q.MilliValue()
	}
	return q.Value()
}

// isScalar: the resources the scheduler keeps as ScalarResources —
// extended resources, hugepages and attachable volumes.
func isScalar(name v1.ResourceName) bool {
	switch name {
	case v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage, v1.ResourcePods:
		return false
	}
	return true
}

// isExtended is v1helper.IsExtendedResourceName: a name with a domain
// outside kubernetes.io and not a quota's requests. name.
func isExtended(name v1.ResourceName) bool {
	s := string(name)
	return strings.Contains(s, "/") && !strings.Contains(s, "kubernetes.io/") && !strings.HasPrefix(s, v1.DefaultResourceRequestsPrefix)
}

// hostPorts are the host ports a pod holds for its lifetime: its
// containers' and its sidecars' (scheduler util.GetHostPorts).
func hostPorts(pod *v1.Pod) []v1.ContainerPort {
	var out []v1.ContainerPort
	for _, c := range podsource.RunningContainers(pod) {
		for _, p := range c.Ports {
			if p.HostPort > 0 {
				out = append(out, p)
			}
		}
	}
	return out
}

// portsFit is the scheduler's nodeports.Fits: a port on 0.0.0.0 conflicts
// with the same protocol and port on any address, and the other way round.
func portsFit(pod *v1.Pod, others []*v1.Pod) bool {
	type key struct {
		proto string
		port  int32
	}
	inUse := map[string]map[key]bool{}
	norm := func(p v1.ContainerPort) (string, key) {
		ip, proto := p.HostIP, string(p.Protocol)
		if ip == "" {
			ip = "0.0.0.0"
		}
		if proto == "" {
			proto = string(v1.ProtocolTCP)
		}
		return ip, key{proto, p.HostPort}
	}
	for _, o := range others {
		for _, p := range hostPorts(o) {
			ip, k := norm(p)
			if inUse[ip] == nil {
				inUse[ip] = map[key]bool{}
			}
			inUse[ip][k] = true
		}
	}
	for _, p := range hostPorts(pod) {
		ip, k := norm(p)
		if ip == "0.0.0.0" {
			for _, m := range inUse {
				if m[k] {
					return false
				}
			}
			continue
		}
		if inUse["0.0.0.0"][k] || inUse[ip][k] {
			return false
		}
	}
	return true
}
