package cluster

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"knode.io/knode/internal/podsource"
)

// TestAPIPodsCannotClaimToBeStatic: the source annotation of an API pod is
// knode's, not its author's.
func TestAPIPodsCannotClaimToBeStatic(t *testing.T) {
	spoof := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "t", Annotations: map[string]string{podsource.SourceAnnotation: "file"}}}
	plain := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "t"}}
	mirror := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: "t", Annotations: map[string]string{podsource.MirrorAnnotation: "h"}}}
	got := apiPods([]any{spoof, plain, mirror})
	if len(got) != 2 {
		t.Fatalf("got %d pods, want the two that are not mirror pods", len(got))
	}
	for _, p := range got {
		if p.Annotations[podsource.SourceAnnotation] != podsource.API || podsource.IsStatic(p) {
			t.Fatalf("%s: source %q", p.Name, p.Annotations[podsource.SourceAnnotation])
		}
	}
	if spoof.Annotations[podsource.SourceAnnotation] != "file" {
		t.Fatal("the informer's object was modified")
	}
}
