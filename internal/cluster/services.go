package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	"knode.io/knode/internal/crispec"
)

// Services watches every Service of the cluster, as the kubelet's service
// informer does, for the pods' service environment. It keeps only what
// the variables need (namespace, name, cluster IP and ports) of each:
// the reflector decodes a Service and hands it to this store, which
// drops the rest at once, so a cluster with many Services (their
// selectors, annotations, managed fields, status) costs the node a few
// dozen bytes per Service instead of a cached object.
type Services struct {
	reflector *cache.Reflector

	mu sync.RWMutex
	// byNamespace holds the kept Services by namespace, then name.
	byNamespace map[string]map[string]crispec.Service
	synced      bool
}

// NewServices watches all Services; Run starts the watch.
func (n *Node) NewServices() *Services {
	s := &Services{byNamespace: map[string]map[string]crispec.Service{}}
	lw := cache.NewListWatchFromClient(n.api.core, "services", metav1.NamespaceAll, fields.Everything())
	s.reflector = cache.NewReflectorWithOptions(lw, &v1.Service{}, serviceStore{s}, cache.ReflectorOptions{Name: "services"})
	return s
}

// Run lists and watches until ctx ends; the reflector retries with
// back-off while the API server is away.
func (s *Services) Run(ctx context.Context) {
	s.reflector.RunWithContext(ctx)
}

// ServicesFor returns the Services of namespace and of the default
// namespace (which holds the kubernetes Service every pod gets); synced
// is false until the first list has arrived.
func (s *Services) ServicesFor(namespace string) ([]crispec.Service, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []crispec.Service
	for _, ns := range []string{namespace, metav1.NamespaceDefault} {
		for _, svc := range s.byNamespace[ns] {
			out = append(out, svc)
		}
		if namespace == metav1.NamespaceDefault {
			break
		}
	}
	return out, s.synced
}

// Len is how many Services are kept.
func (s *Services) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, m := range s.byNamespace {
		n += len(m)
	}
	return n
}

// lean keeps what the service variables need of a Service; the strings
// are copied so that the decoded object, and the buffer it was decoded
// from, are not kept alive by them.
func lean(svc *v1.Service) crispec.Service {
	out := crispec.Service{Namespace: strings.Clone(svc.Namespace), Name: strings.Clone(svc.Name), ClusterIP: strings.Clone(svc.Spec.ClusterIP)}
	if len(svc.Spec.Ports) > 0 {
		out.Ports = make([]crispec.ServicePort, len(svc.Spec.Ports))
		for i, p := range svc.Spec.Ports {
			out.Ports[i] = crispec.ServicePort{Name: strings.Clone(p.Name), Port: p.Port, Protocol: v1.Protocol(strings.Clone(string(p.Protocol)))}
		}
	}
	return out
}

// serviceStore is the reflector's store: it reduces each Service as it
// arrives.
type serviceStore struct{ s *Services }

func asService(obj any) (*v1.Service, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	svc, ok := obj.(*v1.Service)
	if !ok {
		return nil, fmt.Errorf("services watch: unexpected object %T", obj)
	}
	return svc, nil
}

func (st serviceStore) Add(obj any) error { return st.Update(obj) }

func (st serviceStore) Update(obj any) error {
	svc, err := asService(obj)
	if err != nil {
		return err
	}
	l := lean(svc)
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	m := st.s.byNamespace[l.Namespace]
	if m == nil {
		m = map[string]crispec.Service{}
		st.s.byNamespace[l.Namespace] = m
	}
	m[l.Name] = l
	return nil
}

func (st serviceStore) Delete(obj any) error {
	svc, err := asService(obj)
	if err != nil {
		return err
	}
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	if m := st.s.byNamespace[svc.Namespace]; m != nil {
		delete(m, svc.Name)
		if len(m) == 0 {
			delete(st.s.byNamespace, svc.Namespace)
		}
	}
	return nil
}

func (st serviceStore) Replace(list []any, _ string) error {
	fresh := map[string]map[string]crispec.Service{}
	for _, obj := range list {
		svc, err := asService(obj)
		if err != nil {
			return err
		}
		l := lean(svc)
		if fresh[l.Namespace] == nil {
			fresh[l.Namespace] = map[string]crispec.Service{}
		}
		fresh[l.Namespace][l.Name] = l
	}
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	st.s.byNamespace = fresh
	st.s.synced = true
	return nil
}

func (serviceStore) Resync() error { return nil }
