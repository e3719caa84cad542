package integration

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// A container writing more than its ephemeral-storage limit into its
// writable layer is evicted as the kubelet's local storage eviction does,
// reason Evicted with its message.
func TestClusterEphemeralStorageLimit(t *testing.T) {
	t.Parallel()
	cp, n := newClusterNode(t)
	ctx := context.Background()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "filler", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: n.name, AutomountServiceAccountToken: new(bool), TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []v1.Container{{Name: "main", Image: busybox,
				Command:   []string{"sh", "-c", "dd if=/dev/zero of=/filler bs=1M count=8 && exec sleep 3600"},
				Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceEphemeralStorage: resource.MustParse("2Mi")}}},
				// A roomy neighbour: the pod as a whole stays under the sum of
				// the limits, so the container's own limit is what is exceeded
				// (the kubelet checks the pod's sum first).
				{Name: "roomy", Image: busybox, Command: []string{"sleep", "3600"},
					Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceEphemeralStorage: resource.MustParse("100Mi")}}}}}}
	if _, err := cp.core.Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := clusterPod(t, cp, n, "filler", "evicted for its ephemeral storage", func(p *v1.Pod) bool {
		return p.Status.Phase == v1.PodFailed && p.Status.Reason == "Evicted"
	})
	if want := `Container main exceeded its local ephemeral storage limit "2Mi". `; got.Status.Message != want {
		t.Errorf("message %q, want %q", got.Status.Message, want)
	}
}
