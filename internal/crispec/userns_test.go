package crispec

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestUserNamespace(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c"}}}}
	ids := []*runtimeapi.IDMapping{{HostId: 131072, ContainerId: 0, Length: 65536}}
	podNS := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: ids, Gids: ids}
	for _, tc := range []struct {
		name   string
		userns *runtimeapi.UserNamespace
	}{
		{"host's", nil},
		{"pod's", podNS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb, err := Sandbox(pod, 0, Node{NodeName: "n"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			SandboxUserNamespace(sb, tc.userns)
			if got := sb.Linux.SecurityContext.NamespaceOptions.UsernsOptions; got != tc.userns {
				t.Fatalf("sandbox userns %v, want %v", got, tc.userns)
			}
			mounts := []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/pods/x/volumes/data"}, {ContainerPath: "/etc/hosts", HostPath: "/pods/x/etc-hosts"}}
			c := Container(pod, &pod.Spec.Containers[0], ContainerInput{Mounts: mounts}, Node{NodeName: "n"})
			ContainerUserNamespace(c, sb)
			if got := c.Linux.SecurityContext.NamespaceOptions.UsernsOptions; got != tc.userns {
				t.Fatalf("container userns %v, want %v", got, tc.userns)
			}
			for _, m := range c.Mounts {
				if tc.userns == nil && (m.UidMappings != nil || m.GidMappings != nil) {
					t.Errorf("%s: mappings without a user namespace", m.ContainerPath)
				}
				if tc.userns != nil && (len(m.UidMappings) != 1 || m.UidMappings[0].HostId != 131072 || len(m.GidMappings) != 1 || m.GidMappings[0].Length != 65536) {
					t.Errorf("%s: mappings %v %v", m.ContainerPath, m.UidMappings, m.GidMappings)
				}
			}
		})
	}
}
