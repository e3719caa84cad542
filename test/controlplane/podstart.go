package controlplane

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// StartPodWatched creates pod and returns the time from the create call
// until a watch shows it Running: the API-visible pod start that `bench
// cluster` and the conformance harness's figures report.
func StartPodWatched(ctx context.Context, pods corev1client.PodInterface, pod *v1.Pod, timeout time.Duration) (time.Duration, error) {
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", pod.Name).String()})
	if err != nil {
		return 0, err
	}
	defer w.Stop()
	start := time.Now()
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return 0, fmt.Errorf("watch on pod %s ended", pod.Name)
			}
			if p, ok := ev.Object.(*v1.Pod); ok && p.Status.Phase == v1.PodRunning {
				return time.Since(start), nil
			}
		case <-deadline:
			return 0, fmt.Errorf("pod %s not Running after %s", pod.Name, timeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
