package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// leaseServer answers the lease and node calls renewLease makes, and keeps
// the requests it saw.
type leaseServer struct {
	mu       sync.Mutex
	lease    *coordinationv1.Lease
	conflict bool // answer the next PUT with 409
	seen     []string
}

func (s *leaseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, r.Method+" "+r.URL.Path)
	const leasePath = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
	status := func(code int, reason metav1.StatusReason) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Code: int32(code), Reason: reason})
	}
	write := func(obj any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(obj)
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/api/v1/nodes/n1":
		write(&v1.Node{TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}})
	case r.Method == "GET" && r.URL.Path == leasePath+"/n1":
		if s.lease == nil {
			status(http.StatusNotFound, metav1.StatusReasonNotFound)
			return
		}
		write(s.lease)
	case r.Method == "POST" && r.URL.Path == leasePath, r.Method == "PUT" && r.URL.Path == leasePath+"/n1":
		if r.Method == "PUT" && s.conflict {
			s.conflict = false
			status(http.StatusConflict, metav1.StatusReasonConflict)
			return
		}
		l := &coordinationv1.Lease{}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, l); err != nil {
			status(http.StatusBadRequest, metav1.StatusReasonBadRequest)
			return
		}
		l.Kind, l.APIVersion = "Lease", "coordination.k8s.io/v1"
		l.ResourceVersion = fmt.Sprint(len(s.seen))
		s.lease = l
		write(l)
	default:
		status(http.StatusNotFound, metav1.StatusReasonNotFound)
	}
}

func (s *leaseServer) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.seen
	s.seen = nil
	return out
}

type requestCount struct {
	mu    sync.Mutex
	codes []int
}

func (c *requestCount) APIRequest(_, _ string, code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.codes = append(c.codes, code)
}

func testKubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, server)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRenewLease(t *testing.T) {
	fake := &leaseServer{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	counted := &requestCount{}
	n, err := New(Config{Kubeconfig: testKubeconfig(t, srv.URL), Facts: Facts{NodeName: "n1"},
		Requests: counted, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	const (
		getLease = "GET /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"
		putLease = "PUT /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"
		postLse  = "POST /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
		getNode  = "GET /api/v1/nodes/n1"
	)
	steps := []struct {
		name     string
		conflict bool
		want     []string
	}{
		{"first renewal creates the lease, owned by the node", false, []string{getLease, getNode, postLse}},
		{"a renewal is one write of the kept copy", false, []string{putLease}},
		{"and so is the next", false, []string{putLease}},
		{"a conflict reads the lease again and writes it", true, []string{putLease, getLease, putLease}},
		{"then one write again", false, []string{putLease}},
	}
	total := 0
	for _, step := range steps {
		fake.mu.Lock()
		fake.conflict = step.conflict
		fake.mu.Unlock()
		n.renewLease(context.Background())
		if got := fake.take(); !slices.Equal(got, step.want) {
			t.Fatalf("%s: requests %v, want %v", step.name, got, step.want)
		}
		total += len(step.want)
	}
	if fake.lease.Spec.RenewTime == nil || *fake.lease.Spec.HolderIdentity != "n1" ||
		len(fake.lease.OwnerReferences) != 1 || fake.lease.OwnerReferences[0].UID != "node-uid" {
		t.Fatalf("lease: %+v", fake.lease)
	}
	if len(counted.codes) != total || counted.codes[0] != http.StatusNotFound {
		t.Fatalf("observer saw %v, want %d requests starting with a 404", counted.codes, total)
	}
}

type health struct{ runtime, network error }

func (h health) RuntimeErr() error { return h.runtime }
func (h health) NetworkErr() error { return h.network }

func TestReadyCondition(t *testing.T) {
	tests := []struct {
		name    string
		health  health
		status  v1.ConditionStatus
		message string
	}{
		{"healthy", health{}, v1.ConditionTrue, "knode is posting ready status"},
		{"runtime down", health{runtime: fmt.Errorf("container runtime is down: gone")}, v1.ConditionFalse, "container runtime is down: gone"},
		{"pod network not ready", health{network: fmt.Errorf("container runtime network not ready: NetworkReady=false reason:NoCNI message:none")},
			v1.ConditionFalse, "container runtime network not ready: NetworkReady=false reason:NoCNI message:none"},
		{"both: the runtime is named", health{runtime: fmt.Errorf("container runtime is down: gone"), network: fmt.Errorf("network")},
			v1.ConditionFalse, "container runtime is down: gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &Node{health: tt.health}
			st := n.status()
			if len(st.Conditions) != 4 || st.Conditions[3].Type != v1.NodeReady {
				t.Fatalf("conditions: %+v", st.Conditions)
			}
			c := st.Conditions[3]
			if c.Status != tt.status || c.Message != tt.message {
				t.Fatalf("Ready = %s %q, want %s %q", c.Status, c.Message, tt.status, tt.message)
			}
		})
	}
}

type pressure struct {
	memory, disk bool
	err          error
}

func (p pressure) MemoryPressure() (bool, error) { return p.memory, p.err }
func (p pressure) DiskPressure() (bool, error)   { return p.disk, nil }

func TestPressureConditions(t *testing.T) {
	tests := []struct {
		name     string
		pressure Pressure
		want     map[v1.NodeConditionType]string // status and reason
	}{
		{"none", pressure{}, map[v1.NodeConditionType]string{
			v1.NodeMemoryPressure: "False KubeletHasSufficientMemory", v1.NodeDiskPressure: "False KubeletHasNoDiskPressure",
			v1.NodePIDPressure: "False KubeletHasSufficientPID"}},
		{"memory and disk", pressure{memory: true, disk: true}, map[v1.NodeConditionType]string{
			v1.NodeMemoryPressure: "True KubeletHasInsufficientMemory", v1.NodeDiskPressure: "True KubeletHasDiskPressure"}},
		{"memory cannot be read", pressure{err: fmt.Errorf("no /proc")}, map[v1.NodeConditionType]string{
			v1.NodeMemoryPressure: "Unknown KubeletCannotMeasure"}},
		{"not measured", nil, map[v1.NodeConditionType]string{
			v1.NodeMemoryPressure: "Unknown KubeletCannotMeasure", v1.NodePIDPressure: "False KubeletHasSufficientPID"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &Node{health: health{}, pressure: tt.pressure}
			got := map[v1.NodeConditionType]string{}
			for _, c := range n.status().Conditions {
				got[c.Type] = string(c.Status) + " " + c.Reason
			}
			for typ, want := range tt.want {
				if got[typ] != want {
					t.Errorf("%s = %q, want %q", typ, got[typ], want)
				}
			}
		})
	}
}

// TestRuntimeHandlersInStatus: the Node reports each runtime handler's
// features as the kubelet does, in a stable order.
func TestRuntimeHandlersInStatus(t *testing.T) {
	n := &Node{health: health{}}
	if hs := n.status().RuntimeHandlers; hs != nil {
		t.Fatalf("without handlers: %v", hs)
	}
	n.handlers = func() []*runtimeapi.RuntimeHandler {
		return []*runtimeapi.RuntimeHandler{
			{Name: "runc-userns", Features: &runtimeapi.RuntimeHandlerFeatures{UserNamespaces: true, RecursiveReadOnlyMounts: true}},
			{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true}},
			{Name: "runc"},
		}
	}
	hs := n.status().RuntimeHandlers
	type feat struct {
		name         string
		userns, rrom bool
	}
	var got []feat
	for _, h := range hs {
		got = append(got, feat{h.Name, *h.Features.UserNamespaces, *h.Features.RecursiveReadOnlyMounts})
	}
	want := []feat{{"", false, true}, {"runc", false, false}, {"runc-userns", true, true}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("runtimeHandlers %+v, want %+v", got, want)
	}
}
