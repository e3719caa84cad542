package admission

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

// TestFitsHugeRequests: requests whose sum or milli-value does not fit in
// an int64 must not wrap to a negative number that passes the resource
// fit, nor, once admitted, make the other pods' usage negative so that
// any later pod fits.
func TestFitsHugeRequests(t *testing.T) {
	p := &Predicates{Nodes: fixedNode{node: testNode()}}
	twoContainers := func(name, res, q string) *v1.Pod {
		pod := mkPod(name, res, q)
		pod.Spec.Containers = append(pod.Spec.Containers, *pod.Spec.Containers[0].DeepCopy())
		pod.Spec.Containers[1].Name = "d"
		return pod
	}
	for _, tc := range []struct {
		name   string
		pod    *v1.Pod
		reason string
	}{
		{"memory summing past int64", twoContainers("mem", "memory", "5Ei"), ReasonOutOfMemory},
		{"cpu whose milli-value overflows", mkPod("cpu", "cpu", "9223372036854775807"), ReasonOutOfCPU},
		{"ephemeral storage summing past int64", twoContainers("eph", "ephemeral-storage", "5Ei"), ReasonOutOfEphemeral},
		{"extended resource summing past int64", twoContainers("gpu", "example.com/gpu", "5E"), insufficientPrefix + "example.com/gpu"},
	} {
		ok, reason, msg := p.Admit(&Attrs{Pod: tc.pod})
		if ok || reason != tc.reason {
			t.Errorf("%s: admitted %v, %s %q; want refused %s", tc.name, ok, reason, msg, tc.reason)
		}
	}
	// A pod admitted before with wrapping requests (a critical one,
	// admitted over shortages) must not make the node's usage negative.
	hog := twoContainers("hog", "memory", "5Ei")
	if ok, reason, msg := p.Admit(&Attrs{Pod: mkPod("big", "memory", "2Gi"), OtherPods: []*v1.Pod{hog}}); ok {
		t.Errorf("a 2Gi pod on a 1Gi node beside a 10Ei one: admitted (%s %q)", reason, msg)
	}
}
