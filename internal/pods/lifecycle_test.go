package pods

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/crispec"
)

func TestReadinessGates(t *testing.T) {
	gated := func(conds ...v1.PodCondition) *v1.Pod {
		return &v1.Pod{Spec: v1.PodSpec{ReadinessGates: []v1.PodReadinessGate{{ConditionType: "example.com/a"}, {ConditionType: "example.com/b"}}},
			Status: v1.PodStatus{Conditions: conds}}
	}
	cond := func(t v1.PodConditionType, s v1.ConditionStatus) v1.PodCondition {
		return v1.PodCondition{Type: t, Status: s}
	}
	tests := []struct {
		name    string
		pod     *v1.Pod
		ready   v1.ConditionStatus
		want    v1.ConditionStatus
		reason  string
		message string
		extra   int
	}{
		{name: "no condition yet", pod: gated(), ready: v1.ConditionTrue, want: v1.ConditionFalse, reason: "ReadinessGatesNotReady",
			message: `corresponding condition of pod readiness gate "example.com/a" does not exist., corresponding condition of pod readiness gate "example.com/b" does not exist.`},
		{name: "one False", pod: gated(cond("example.com/a", v1.ConditionTrue), cond("example.com/b", v1.ConditionFalse)), ready: v1.ConditionTrue,
			want: v1.ConditionFalse, reason: "ReadinessGatesNotReady", message: `the status of pod readiness gate "example.com/b" is not "True", but False`, extra: 2},
		{name: "all True", pod: gated(cond("example.com/a", v1.ConditionTrue), cond("example.com/b", v1.ConditionTrue)), ready: v1.ConditionTrue,
			want: v1.ConditionTrue, extra: 2},
		{name: "containers not ready wins", pod: gated(), ready: v1.ConditionFalse, want: v1.ConditionFalse, reason: "ContainersNotReady"},
		{name: "no gates: foreign conditions kept, kubelet ones not copied", pod: &v1.Pod{Status: v1.PodStatus{Conditions: []v1.PodCondition{
			cond("DisruptionTarget", v1.ConditionTrue), cond(v1.PodReady, v1.ConditionFalse)}}}, ready: v1.ConditionTrue, want: v1.ConditionTrue, extra: 1},
	}
	for _, tc := range tests {
		st := &v1.PodStatus{Conditions: []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue}, {Type: v1.PodReady, Status: tc.ready}}}
		if tc.ready == v1.ConditionFalse {
			st.Conditions[1].Reason = "ContainersNotReady"
		}
		readinessGates(tc.pod, st, nil)
		r := st.Conditions[1]
		if r.Status != tc.want || r.Reason != tc.reason || r.Message != tc.message {
			t.Errorf("%s: Ready %s %q %q, want %s %q %q", tc.name, r.Status, r.Reason, r.Message, tc.want, tc.reason, tc.message)
		}
		if len(st.Conditions) != 2+tc.extra {
			t.Errorf("%s: conditions %v", tc.name, st.Conditions)
		}
	}
}

func TestContainerHashIsNameAndImage(t *testing.T) {
	c := &v1.Container{Name: "main", Image: "busybox:1.36", Command: []string{"sleep"}}
	h := crispec.ContainerHash(c)
	other := c.DeepCopy()
	other.Command = []string{"true"}
	other.Resources.Limits = v1.ResourceList{}
	if crispec.ContainerHash(other) != h || !crispec.HashMatches(other, h) {
		t.Error("a field an API pod cannot change altered the hash")
	}
	other.Image = "busybox:1.37"
	if crispec.HashMatches(other, h) {
		t.Error("a new image kept the hash")
	}
	// Containers started by an older knode carry the whole-spec hash.
	legacy := "bad"
	if crispec.HashMatches(c, legacy) {
		t.Error("any annotation matches")
	}
}
