package cluster

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"knode.io/knode/internal/crispec"
)

func svc(ns, name, ip string, ports ...v1.ServicePort) *v1.Service {
	return &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{"big": strings.Repeat("x", 1000)}},
		Spec: v1.ServiceSpec{ClusterIP: ip, Ports: ports, Selector: map[string]string{"app": name}}}
}

func names(list []crispec.Service) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.Namespace+"/"+s.Name)
	}
	slices.Sort(out)
	return out
}

// TestServicesKeepWhatTheEnvNeeds: the store behind the Service watch
// keeps namespace, name, cluster IP and ports of each Service, answers a
// namespace with its Services and the default namespace's, says synced
// only after the first list, and follows adds, updates and deletes
// (also a delete seen only as a final state unknown).
func TestServicesKeepWhatTheEnvNeeds(t *testing.T) {
	s := &Services{byNamespace: map[string]map[string]crispec.Service{}}
	st := serviceStore{s}
	if _, synced := s.ServicesFor("shop"); synced {
		t.Fatal("synced before the first list")
	}
	if err := st.Replace([]any{
		svc("default", "kubernetes", "10.0.0.1", v1.ServicePort{Name: "https", Port: 443, Protocol: v1.ProtocolTCP}),
		svc("shop", "web", "10.0.0.2", v1.ServicePort{Port: 80, Protocol: v1.ProtocolTCP}),
		svc("other", "db", "10.0.0.3", v1.ServicePort{Port: 5432}),
	}, "1"); err != nil {
		t.Fatal(err)
	}
	list, synced := s.ServicesFor("shop")
	if !synced || !slices.Equal(names(list), []string{"default/kubernetes", "shop/web"}) {
		t.Fatalf("shop: %v synced=%v", names(list), synced)
	}
	if got, _ := s.ServicesFor("default"); !slices.Equal(names(got), []string{"default/kubernetes"}) {
		t.Fatalf("default: %v", names(got))
	}
	want := crispec.Service{Namespace: "shop", Name: "web", ClusterIP: "10.0.0.2", Ports: []crispec.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}}}
	if got := s.byNamespace["shop"]["web"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("kept %+v, want %+v", got, want)
	}

	if err := st.Update(svc("shop", "web", "10.0.0.9", v1.ServicePort{Port: 8080})); err != nil {
		t.Fatal(err)
	}
	if err := st.Add(svc("shop", "api", "10.0.0.4", v1.ServicePort{Port: 1})); err != nil {
		t.Fatal(err)
	}
	if got := s.byNamespace["shop"]["web"]; got.ClusterIP != "10.0.0.9" || got.Ports[0].Port != 8080 {
		t.Fatalf("after the update: %+v", got)
	}
	if err := st.Delete(cache.DeletedFinalStateUnknown{Key: "other/db", Obj: svc("other", "db", "10.0.0.3")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(svc("shop", "api", "")); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || s.byNamespace["other"] != nil {
		t.Fatalf("after the deletes: %v", s.byNamespace)
	}
	if err := st.Add(&v1.Pod{}); err == nil {
		t.Fatal("a pod was taken for a Service")
	}
}
