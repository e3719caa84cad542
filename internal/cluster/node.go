// Package cluster joins knode to a Kubernetes control plane as a node: it
// registers (or adopts) the Node object, renews its Lease, and keeps the
// node's status — addresses, runtime, capacity including device-plugin
// resources, and the Ready condition — up to date.
package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"knode.io/knode/internal/nodeinfo"
)

// The kubelet's intervals: the lease lasts 40 s and is renewed every 10 s;
// status is checked every 10 s and written on change or every 5 minutes.
const (
	leaseDuration       = 40 * time.Second
	renewInterval       = 10 * time.Second
	statusCheckInterval = 10 * time.Second
	statusReportEvery   = 5 * time.Minute
	// callTimeout bounds each API call, so an API server that accepts a
	// connection and never answers cannot stall the loops.
	callTimeout = 15 * time.Second
)

// Facts are what the node reports about itself.
type Facts struct {
	NodeName       string
	Labels         map[string]string
	HostIP         string
	Hostname       string
	RuntimeVersion string // <name>://<version>
	KubeletVersion string
	KernelVersion  string
	OSImage        string
	Port           int32
}

// Health tells whether the node can run pods now.
type Health interface {
	// RuntimeErr is nil while the container runtime is healthy.
	RuntimeErr() error
	// NetworkErr is nil while the runtime's pod network is ready.
	NetworkErr() error
}

// Pressure measures memory and disk pressure for the node's conditions.
type Pressure interface {
	MemoryPressure() (bool, error)
	DiskPressure() (bool, error)
}

// Node keeps one Node object and its Lease.
type Node struct {
	api    *api
	facts  Facts
	health Health
	// resources gives capacity and allocatable.
	resources func() (capacity, allocatable v1.ResourceList)
	log       *slog.Logger
	// pressure may be nil: the conditions are then Unknown.
	pressure Pressure
	// events publishes the node's own events once NewEvents made it.
	events *Events
	// handlers gives the runtime's handlers; may be nil.
	handlers func() []*runtimeapi.RuntimeHandler

	// lease is the Lease as last written; only Run's goroutine touches it.
	lease *coordinationv1.Lease
	// obj is the node's own Node object, watched once registered.
	obj nodeObject
}

// Config is what a Node needs.
type Config struct {
	Kubeconfig string
	Facts      Facts
	Health     Health
	// Resources gives the node's capacity and allocatable (device-plugin
	// resources included), as admission counts them.
	Resources func() (capacity, allocatable v1.ResourceList)
	// Pressure, when set, gives the MemoryPressure and DiskPressure conditions.
	Pressure Pressure
	// Handlers, when set, gives the runtime's handlers and their features
	// (CRI Status), reported in the Node's status.runtimeHandlers.
	Handlers func() []*runtimeapi.RuntimeHandler
	// Requests, when set, is told of every request to the API server.
	Requests RequestObserver
	Log      *slog.Logger
}

// New connects with a kubeconfig, using only the clients knode needs.
func New(c Config) (*Node, error) {
	a, err := newAPI(c.Kubeconfig, "knode/"+c.Facts.KubeletVersion, c.Requests)
	if err != nil {
		return nil, err
	}
	return &Node{api: a, facts: c.Facts, health: c.Health, resources: c.Resources, pressure: c.Pressure, handlers: c.Handlers, log: c.Log}, nil
}

// Run registers the node, then renews the lease and reports status until
// ctx ends. API server outages are retried; nothing is lost meanwhile.
func (n *Node) Run(ctx context.Context) {
	for {
		if err := n.register(ctx); err == nil {
			break
		} else {
			n.log.Warn("node registration failed, retrying", "node", n.facts.NodeName, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
	n.log.Info("node registered", "node", n.facts.NodeName)
	n.watchNode(ctx)
	if n.events != nil {
		n.events.nodeEvent(v1.EventTypeNormal, "Starting", "Starting knode (kubelet).")
	}
	renew := time.NewTicker(renewInterval)
	defer renew.Stop()
	check := time.NewTicker(statusCheckInterval)
	defer check.Stop()
	var last v1.NodeStatus
	var reported time.Time
	n.renewLease(ctx)
	for {
		status := n.status()
		if !statusEqual(last, status) || time.Since(reported) > statusReportEvery {
			if err := n.patchStatus(ctx, status); err != nil {
				n.log.Warn("node status update failed", "err", err)
			} else {
				n.conditionEvents(last, status)
				last, reported = status, time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			n.renewLease(ctx)
		case <-check.C:
		}
	}
}

func (n *Node) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.facts.NodeName, Labels: n.labels()}}
	err := n.api.createNode(ctx, node)
	if apierrors.IsAlreadyExists(err) {
		// Adopt: make sure our labels are there.
		existing, err := n.api.getNode(ctx, n.facts.NodeName)
		if err != nil {
			return err
		}
		changed := false
		if existing.Labels == nil {
			existing.Labels = map[string]string{}
		}
		for k, v := range n.labels() {
			if existing.Labels[k] != v {
				existing.Labels[k], changed = v, true
			}
		}
		if changed {
			err = n.api.updateNode(ctx, existing)
		}
		return err
	}
	return err
}

func (n *Node) labels() map[string]string {
	return nodeinfo.Labels(n.facts.NodeName, n.facts.Labels)
}

// renewLease renews the node's Lease. Like the kubelet, it writes the copy
// kept from the last renewal, one request per renewal; when that fails (a
// conflict, or the API server was away) it reads or creates the lease again.
func (n *Node) renewLease(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	now := metav1.NewMicroTime(time.Now())
	if n.lease != nil {
		lease := n.lease.DeepCopy()
		lease.Spec.RenewTime = &now
		renewed, err := n.api.updateLease(ctx, lease)
		if err == nil {
			n.lease = renewed
			return
		}
		n.log.Warn("node lease renew failed; reading it again", "err", err)
		n.lease = nil
	}
	lease, err := n.api.getLease(ctx, v1.NamespaceNodeLease, n.facts.NodeName)
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: n.facts.NodeName, Namespace: v1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(n.facts.NodeName),
				LeaseDurationSeconds: ptr.To(int32(leaseDuration / time.Second)), RenewTime: &now},
		}
		if node, err := n.api.getNode(ctx, n.facts.NodeName); err == nil {
			lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		}
		if n.lease, err = n.api.createLease(ctx, lease); err != nil {
			n.log.Warn("node lease create failed", "err", err)
		}
		return
	}
	if err != nil {
		n.log.Warn("node lease get failed", "err", err)
		return
	}
	lease.Spec.RenewTime = &now
	lease.Spec.HolderIdentity = ptr.To(n.facts.NodeName)
	if n.lease, err = n.api.updateLease(ctx, lease); err != nil {
		n.log.Warn("node lease renew failed", "err", err)
	}
}

// status is the node's current status, capacity included.
func (n *Node) status() v1.NodeStatus {
	var capacity, allocatable v1.ResourceList
	if n.resources != nil {
		capacity, allocatable = n.resources()
	}
	ready := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "knode is posting ready status"}
	if err := n.health.RuntimeErr(); err != nil {
		ready = v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionFalse, Reason: "KubeletNotReady", Message: err.Error()}
	} else if err := n.health.NetworkErr(); err != nil {
		ready = v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionFalse, Reason: "KubeletNotReady", Message: err.Error()}
	}
	return v1.NodeStatus{
		Capacity:    capacity,
		Allocatable: allocatable,
		Conditions:  append(n.pressureConditions(), ready),
		Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: n.facts.HostIP},
			{Type: v1.NodeHostName, Address: n.facts.Hostname},
		},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: n.facts.Port}},
		NodeInfo: v1.NodeSystemInfo{
			ContainerRuntimeVersion: n.facts.RuntimeVersion,
			KubeletVersion:          n.facts.KubeletVersion,
			KernelVersion:           n.facts.KernelVersion,
			OSImage:                 n.facts.OSImage,
			OperatingSystem:         runtime.GOOS,
			Architecture:            runtime.GOARCH,
		},
		RuntimeHandlers: n.runtimeHandlers(),
	}
}

// runtimeHandlers are the runtime's handlers with the features the
// kubelet reports (whether each supports user namespaces and recursive
// read-only mounts), so that a user can see which RuntimeClass a pod with
// hostUsers false needs. Sorted by name: containerd lists them in a
// random order, and the status would change at every check.
func (n *Node) runtimeHandlers() []v1.NodeRuntimeHandler {
	if n.handlers == nil {
		return nil
	}
	hs := n.handlers()
	if hs == nil {
		return nil
	}
	out := make([]v1.NodeRuntimeHandler, 0, len(hs))
	for _, h := range hs {
		out = append(out, v1.NodeRuntimeHandler{Name: h.GetName(), Features: &v1.NodeRuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: ptr.To(h.GetFeatures().GetRecursiveReadOnlyMounts()),
			UserNamespaces:          ptr.To(h.GetFeatures().GetUserNamespaces()),
		}})
	}
	slices.SortFunc(out, func(a, b v1.NodeRuntimeHandler) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// pressureConditions are the kubelet's MemoryPressure, DiskPressure and
// PIDPressure, with its reasons and messages. PID pressure has no default
// threshold in the kubelet, and none here.
func (n *Node) pressureConditions() []v1.NodeCondition {
	condition := func(t v1.NodeConditionType, measure func() (bool, error), okReason, okMessage, badReason, badMessage string) v1.NodeCondition {
		if measure == nil {
			return v1.NodeCondition{Type: t, Status: v1.ConditionUnknown, Reason: "KubeletCannotMeasure", Message: "knode does not measure this here"}
		}
		under, err := measure()
		switch {
		case err != nil:
			return v1.NodeCondition{Type: t, Status: v1.ConditionUnknown, Reason: "KubeletCannotMeasure", Message: err.Error()}
		case under:
			return v1.NodeCondition{Type: t, Status: v1.ConditionTrue, Reason: badReason, Message: badMessage}
		}
		return v1.NodeCondition{Type: t, Status: v1.ConditionFalse, Reason: okReason, Message: okMessage}
	}
	var memory, disk func() (bool, error)
	if n.pressure != nil {
		memory, disk = n.pressure.MemoryPressure, n.pressure.DiskPressure
	}
	return []v1.NodeCondition{
		condition(v1.NodeMemoryPressure, memory, "KubeletHasSufficientMemory", "kubelet has sufficient memory available",
			"KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
		condition(v1.NodeDiskPressure, disk, "KubeletHasNoDiskPressure", "kubelet has no disk pressure",
			"KubeletHasDiskPressure", "kubelet has disk pressure"),
		condition(v1.NodePIDPressure, noThreshold, "KubeletHasSufficientPID", "kubelet has sufficient PID available", "", ""),
	}
}

// conditionEvents publishes the kubelet's node events for conditions that
// changed: NodeReady, NodeNotReady, NodeHasSufficientMemory, ...
func (n *Node) conditionEvents(prev, cur v1.NodeStatus) {
	if n.events == nil {
		return
	}
	before := map[v1.NodeConditionType]v1.ConditionStatus{}
	for _, c := range prev.Conditions {
		before[c.Type] = c.Status
	}
	for _, c := range cur.Conditions {
		if before[c.Type] == c.Status {
			continue
		}
		reason := nodeEventReason(c)
		if reason == "" {
			continue
		}
		n.events.nodeEvent(v1.EventTypeNormal, reason, fmt.Sprintf("Node %s status is now: %s", n.facts.NodeName, reason))
	}
}

// nodeEventReason is the kubelet's event reason for a condition's status.
func nodeEventReason(c v1.NodeCondition) string {
	if c.Status == v1.ConditionUnknown {
		return ""
	}
	ok := c.Status == v1.ConditionFalse
	switch c.Type {
	case v1.NodeReady:
		if c.Status == v1.ConditionTrue {
			return "NodeReady"
		}
		return "NodeNotReady"
	case v1.NodeMemoryPressure:
		if ok {
			return "NodeHasSufficientMemory"
		}
		return "NodeHasInsufficientMemory"
	case v1.NodeDiskPressure:
		if ok {
			return "NodeHasNoDiskPressure"
		}
		return "NodeHasDiskPressure"
	case v1.NodePIDPressure:
		if ok {
			return "NodeHasSufficientPID"
		}
		return "NodeHasInsufficientPID"
	}
	return ""
}

// noThreshold is a pressure with no eviction threshold set: never under it.
func noThreshold() (bool, error) { return false, nil }

// statusEqual compares what matters, ignoring heartbeat times.
func statusEqual(a, b v1.NodeStatus) bool {
	strip := func(s v1.NodeStatus) v1.NodeStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
			s.Conditions[i].LastTransitionTime = metav1.Time{}
		}
		return s
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

func (n *Node) patchStatus(ctx context.Context, status v1.NodeStatus) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	node, err := n.api.getNode(ctx, n.facts.NodeName)
	if err != nil {
		return err
	}
	now := metav1.Now()
	for i := range status.Conditions {
		status.Conditions[i].LastHeartbeatTime = now
		status.Conditions[i].LastTransitionTime = now
		for _, old := range node.Status.Conditions {
			if old.Type == status.Conditions[i].Type && old.Status == status.Conditions[i].Status {
				status.Conditions[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	node.Status = status
	return n.api.updateNode(ctx, node, "status")
}
