package crispec

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestShareTargetPID(t *testing.T) {
	yes := true
	for _, tc := range []struct {
		name       string
		spec       v1.PodSpec
		wantPid    runtimeapi.NamespaceMode
		wantTarget string
	}{
		{"own PID namespace: the target's", v1.PodSpec{}, runtimeapi.NamespaceMode_TARGET, "target-id"},
		{"shared process namespace stays the pod's", v1.PodSpec{ShareProcessNamespace: &yes}, runtimeapi.NamespaceMode_POD, ""},
		{"host PID stays the node's", v1.PodSpec{HostPID: true}, runtimeapi.NamespaceMode_NODE, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{Spec: tc.spec}
			c := &v1.Container{Name: "debug", Image: "busybox"}
			cfg := Container(pod, c, ContainerInput{}, Node{})
			ShareTargetPID(cfg, "target-id")
			ns := cfg.Linux.SecurityContext.NamespaceOptions
			if ns.Pid != tc.wantPid || ns.TargetId != tc.wantTarget {
				t.Errorf("pid %v target %q, want %v %q", ns.Pid, ns.TargetId, tc.wantPid, tc.wantTarget)
			}
		})
	}
}
