package podsupport

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// A container's lifecycle.stopSignal (the kubelet's alpha
// ContainerStopSignals) is refused, not dropped: nothing sends it to the
// runtime.
func TestStopSignalRefused(t *testing.T) {
	sig := v1.SIGUSR1
	pod := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "a"}, {Name: "b", Lifecycle: &v1.Lifecycle{StopSignal: &sig}}}}}
	err := Check(pod)
	if err == nil || !strings.Contains(err.Error(), "spec.containers[1].lifecycle.stopSignal") {
		t.Fatalf("Check = %v, want a refusal naming spec.containers[1].lifecycle.stopSignal", err)
	}
}
