package crispec

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestTerminationMessageMount(t *testing.T) {
	host := "/var/lib/knode/pods/u/containers/app/0a1b2c3d"
	for _, tc := range []struct {
		name string
		c    v1.Container
		want *runtimeapi.Mount
		err  bool
	}{
		{"default path, read-write", v1.Container{Name: "app", TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: v1.TerminationMessageReadFile},
			&runtimeapi.Mount{ContainerPath: "/dev/termination-log", HostPath: host}, false},
		{"custom path with fallback", v1.Container{Name: "app", TerminationMessagePath: "/tmp/msg", TerminationMessagePolicy: v1.TerminationMessageFallbackToLogsOnError},
			&runtimeapi.Mount{ContainerPath: "/tmp/msg", HostPath: host}, false},
		{"no path, no mount", v1.Container{Name: "app"}, nil, false},
		{"relative path refused", v1.Container{Name: "app", TerminationMessagePath: "tmp/msg"}, nil, true},
		{"unknown policy refused", v1.Container{Name: "app", TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: "Always"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TerminationMessageMount(&tc.c, host)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("mount = %v, want %v", got, tc.want)
			}
		})
	}
}
