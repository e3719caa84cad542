package cluster

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// listServer answers the LIST of pods and of nodes with one object each,
// carrying managedFields as the API server sets them; a watch stays open
// (empty) until the test ends, a watch-list request is refused so that the
// reflector lists.
type listServer struct{ done <-chan struct{} }

func (s listServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply,
		APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:containers":{}}}`)}}}
	q := r.URL.Query()
	if q.Get("watch") == "true" {
		if q.Get("sendInitialEvents") == "true" {
			http.Error(w, "no watch-list here", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-s.done:
		case <-r.Context().Done():
		}
		return
	}
	var list runtime.Object
	switch r.URL.Path {
	case "/api/v1/pods":
		list = &v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "1"},
			Items: []v1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u", ResourceVersion: "1", ManagedFields: managed},
				Spec: v1.PodSpec{NodeName: "n1", Containers: []v1.Container{{Name: "c", Image: "i"}}}}}}
	case "/api/v1/nodes":
		list = &v1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "1"},
			Items: []v1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: "1", ManagedFields: managed, Labels: map[string]string{"zone": "a"}}}}}
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

// TestInformersDropManagedFields: the pod and node informers cache their
// objects without managedFields (which knode never reads), and with
// everything else.
func TestInformersDropManagedFields(t *testing.T) {
	done := make(chan struct{})
	srv := httptest.NewServer(listServer{done: done})
	defer srv.Close()
	defer close(done)
	n, err := New(Config{Kubeconfig: testKubeconfig(t, srv.URL), Facts: Facts{NodeName: "n1"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := n.NewPods()
	go pods.informer.Run(ctx.Done())
	n.watchNode(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), pods.informer.HasSynced, n.obj.informer.HasSynced) {
		t.Fatal("informers did not sync")
	}
	obj, ok, _ := pods.informer.GetStore().GetByKey("ns/p")
	if !ok {
		t.Fatal("pod ns/p not cached")
	}
	pod := obj.(*v1.Pod)
	if pod.ManagedFields != nil {
		t.Errorf("cached pod keeps managedFields: %v", pod.ManagedFields)
	}
	if pod.UID != "u" || len(pod.Spec.Containers) != 1 || pod.Spec.Containers[0].Image != "i" {
		t.Errorf("cached pod lost more than managedFields: %+v", pod)
	}
	obj, ok, _ = n.obj.informer.GetStore().GetByKey("n1")
	if !ok {
		t.Fatal("node n1 not cached")
	}
	node := obj.(*v1.Node)
	if node.ManagedFields != nil {
		t.Errorf("cached node keeps managedFields: %v", node.ManagedFields)
	}
	if node.Labels["zone"] != "a" {
		t.Errorf("cached node lost its labels: %v", node.Labels)
	}
}

// TestStripManagedFieldsPassesTombstones: an object that is not an API
// object goes through unchanged.
func TestStripManagedFieldsPassesTombstones(t *testing.T) {
	tomb := cache.DeletedFinalStateUnknown{Key: "ns/p", Obj: &v1.Pod{}}
	got, err := stripManagedFields(tomb)
	if err != nil || got != any(tomb) {
		t.Fatalf("got %v, %v; want the tombstone unchanged", got, err)
	}
}
