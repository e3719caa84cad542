package pods

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An API object whose author wrote kubernetes.io/config.source: file must
// not pass for a static pod (exempt from eviction and pressure admission,
// allowed to restore without the ContainerCheckpoint gate): the sink
// records the source that declared the pod, as the kubelet's config merge.
func TestSetPodsRecordsTheDeclaringSource(t *testing.T) {
	f := newFixture(t)
	forged := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-forged",
		Annotations: map[string]string{"kubernetes.io/config.source": "file"}},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: image}}}}
	plain := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "default", UID: "uid-plain"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: image}}}}
	f.m.SetPods("api", []*v1.Pod{forged, plain})
	for _, name := range []string{"p", "q"} {
		got, ok := f.m.GetPod("default", name)
		if !ok {
			t.Fatalf("pod %s not managed", name)
		}
		if src := got.Annotations["kubernetes.io/config.source"]; src != "api" {
			t.Errorf("pod %s: config.source = %q, want api", name, src)
		}
	}
}
