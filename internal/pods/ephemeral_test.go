package pods

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// An ephemeral container arrives after its pod's admission: a field knode
// refuses is caught when it would start, named at its place in the pod.
func TestEphemeralFieldsChecked(t *testing.T) {
	ok := &v1.EphemeralContainer{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}
	if err := checkEphemeralFields(ok, 2); err != nil {
		t.Fatalf("a plain debug container refused: %v", err)
	}
	bad := ok.DeepCopy()
	bad.VolumeDevices = []v1.VolumeDevice{{Name: "disk", DevicePath: "/dev/xvda"}}
	err := checkEphemeralFields(bad, 2)
	if err == nil || !strings.Contains(err.Error(), "spec.ephemeralContainers[2].volumeDevices") || refusalReason(err) != "PodFieldNotSupported" {
		t.Fatalf("volumeDevices on an ephemeral container: %v (%s)", err, refusalReason(err))
	}
}
