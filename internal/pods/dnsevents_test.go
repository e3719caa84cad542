package pods

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// nodeEvents is a recorder that also records events about the node, as
// the cluster's does.
type nodeEvents struct {
	events
	node []string
}

func (e *nodeEvents) NodeEvent(eventType, reason, message string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.node = append(e.node, eventType+" "+reason+": "+message)
}

// Without cluster DNS a ClusterFirst pod's sandbox warns on the node as
// well as on the pod, with the kubelet's two messages.
func TestMissingClusterDNSIsRecordedOnTheNode(t *testing.T) {
	f := newFixture(t)
	rec := &nodeEvents{}
	f.m.d.Events = rec
	w := f.worker(testPod(v1.RestartPolicyAlways))
	f.sync(w)
	const msg = `kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.`
	if want := []string{"Warning MissingClusterDNS: " + msg}; !slices.Equal(rec.node, want) {
		t.Errorf("node events %q, want %q", rec.node, want)
	}
	if got := rec.take(); !slices.Contains(got, `Warning MissingClusterDNS: pod: "web-n1_default(uid-1)". `+msg) {
		t.Errorf("pod events %q", got)
	}
}
