package cluster

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

// The status knode writes keeps the conditions others own as the object
// has them, except a DisruptionTarget knode set itself (a preempted pod),
// which replaces the object's, as the kubelet's mergePodStatus does.
func TestWithForeignConditions(t *testing.T) {
	obj := &v1.Pod{Status: v1.PodStatus{Conditions: []v1.PodCondition{
		{Type: v1.PodReady, Status: v1.ConditionTrue},
		{Type: "example.com/gate", Status: v1.ConditionTrue},
		{Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: "DeletionByTaintManager"},
	}}}
	types := func(st v1.PodStatus) map[v1.PodConditionType]v1.PodCondition {
		out := map[v1.PodConditionType]v1.PodCondition{}
		for _, c := range st.Conditions {
			if _, dup := out[c.Type]; dup {
				t.Fatalf("two %s conditions: %+v", c.Type, st.Conditions)
			}
			out[c.Type] = c
		}
		return out
	}
	// A status built from an older copy of the object: the object's own win.
	stale := v1.PodStatus{Conditions: []v1.PodCondition{
		{Type: v1.PodReady, Status: v1.ConditionFalse},
		{Type: "example.com/gate", Status: v1.ConditionFalse},
		{Type: v1.DisruptionTarget, Status: v1.ConditionFalse, Reason: "DeletionByTaintManager"},
	}}
	got := types(withForeignConditions(stale, obj))
	if got[v1.PodReady].Status != v1.ConditionFalse || got["example.com/gate"].Status != v1.ConditionTrue ||
		got[v1.DisruptionTarget].Status != v1.ConditionTrue || got[v1.DisruptionTarget].Reason != "DeletionByTaintManager" {
		t.Errorf("stale copy: %+v", got)
	}
	// knode preempted the pod: its DisruptionTarget replaces the object's.
	preempted := v1.PodStatus{Conditions: []v1.PodCondition{
		{Type: v1.PodReady, Status: v1.ConditionFalse},
		{Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: v1.PodReasonTerminationByKubelet, Message: "Pod was preempted by Kubelet to accommodate a critical pod."},
	}}
	got = types(withForeignConditions(preempted, obj))
	if c := got[v1.DisruptionTarget]; c.Reason != v1.PodReasonTerminationByKubelet || got["example.com/gate"].Status != v1.ConditionTrue {
		t.Errorf("preempted: %+v", got)
	}
}
