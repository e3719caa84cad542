package integration

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// TestAdversary3DeletedPodHoldsItsPlace: on a node for one pod, a tenant
// binds a pod itself (spec.nodeName: no scheduler counts for it) whose
// main process ignores SIGTERM, with an hour's grace, deletes it and binds
// another. The first still runs through its grace period, so the second
// is refused (OutOfpods), as the kubelet counts a pod whose termination
// was requested until it is known terminated: otherwise each
// delete-and-recreate would stack another pod's worth on the node.
func TestAdversary3DeletedPodHoldsItsPlace(t *testing.T) {
	t.Parallel()
	cp, n := newClusterNode(t, "--max-pods", "1")
	ctx := context.Background()
	newPod := func(name string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: v1.PodSpec{NodeName: n.name, AutomountServiceAccountToken: new(bool), TerminationGracePeriodSeconds: ptr.To[int64](3600),
				Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c", "trap '' TERM; sleep 3600 & wait; sleep 3600"}}}}}
	}
	n.eventually(60*time.Second, "the first pod created (the node registered)", func() bool {
		_, err := cp.core.Pods("default").Create(ctx, newPod("first"), metav1.CreateOptions{})
		return err == nil
	})
	clusterPod(t, cp, n, "first", "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	if err := cp.core.Pods("default").Delete(ctx, "first", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.core.Pods("default").Create(ctx, newPod("second"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := clusterPod(t, cp, n, "second", "admitted or refused", func(p *v1.Pod) bool {
		return p.Status.Phase == v1.PodRunning || p.Status.Phase == v1.PodFailed
	})
	if got.Status.Phase != v1.PodFailed || got.Status.Reason != "OutOfpods" {
		t.Errorf("second pod: %s %s %q, want Failed OutOfpods while the first still runs", got.Status.Phase, got.Status.Reason, got.Status.Message)
	}
	ctx30, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := n.cri.ListContainers(ctx30, &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{"io.kubernetes.pod.name": "first", "io.kubernetes.pod.namespace": "default"}})
	if err != nil || len(list) != 1 {
		t.Errorf("the first pod's running containers: %d %v: it stopped before its grace period ended, the test proves nothing", len(list), err)
	}
}
