package cluster

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRuntimeClassLookup: a class is one GET and then cached; a missing one
// is the API server's NotFound, asked again after a short while; another
// failure is not cached.
func TestRuntimeClassLookup(t *testing.T) {
	var mu sync.Mutex
	gets := map[string]int{}
	exists := map[string]string{"gvisor": "runsc"}
	failing := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/apis/node.k8s.io/v1/runtimeclasses/")
		if !ok || r.Method != http.MethodGet {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		mu.Lock()
		gets[name]++
		handler, found := exists[name]
		fail := failing && name == "flaky"
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case fail:
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure", Message: "etcd is down", Code: 500})
		case found:
			_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": map[string]any{"name": name}, "handler": handler})
		default:
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure", Reason: metav1.StatusReasonNotFound,
				Message: `runtimeclasses.node.k8s.io "` + name + `" not found`, Code: 404,
				Details: &metav1.StatusDetails{Name: name, Group: "node.k8s.io", Kind: "runtimeclasses"}})
		}
	}))
	defer srv.Close()
	n, err := New(Config{Kubeconfig: testKubeconfig(t, srv.URL), Facts: Facts{NodeName: "n1"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rc := n.NewRuntimeClasses()
	clock := time.Now()
	rc.now = func() time.Time { return clock }
	ctx := context.Background()
	for range 3 {
		if h, err := rc.RuntimeHandler(ctx, "gvisor"); err != nil || h != "runsc" {
			t.Fatalf("gvisor: %q %v", h, err)
		}
	}
	for range 2 {
		_, err := rc.RuntimeHandler(ctx, "missing")
		if !apierrors.IsNotFound(err) || err.Error() != `runtimeclasses.node.k8s.io "missing" not found` {
			t.Fatalf("missing: %v", err)
		}
	}
	if _, err := rc.RuntimeHandler(ctx, "flaky"); err == nil || !strings.HasPrefix(err.Error(), "failed to lookup RuntimeClass flaky: ") {
		t.Fatalf("flaky: %v", err)
	}
	mu.Lock()
	failing = false
	exists["missing"] = "runc"
	exists["flaky"] = "crun"
	mu.Unlock()
	if h, err := rc.RuntimeHandler(ctx, "flaky"); err != nil || h != "crun" {
		t.Fatalf("flaky after recovery: %q %v", h, err)
	}
	if _, err := rc.RuntimeHandler(ctx, "missing"); err == nil {
		t.Fatal("a NotFound was not kept for a while")
	}
	clock = clock.Add(runtimeClassNotFoundTTL + time.Second)
	if h, err := rc.RuntimeHandler(ctx, "missing"); err != nil || h != "runc" {
		t.Fatalf("missing, created since: %q %v", h, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if gets["gvisor"] != 1 || gets["missing"] != 2 || gets["flaky"] != 2 {
		t.Errorf("GETs %v, want gvisor 1, missing 2, flaky 2", gets)
	}
}
