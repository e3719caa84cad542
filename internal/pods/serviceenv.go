package pods

import (
	"errors"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/podsource"
)

// Services is the node's view of the cluster's Services, for the pods'
// service environment (cluster mode).
type Services interface {
	// ServicesFor returns the Services of namespace and the default
	// namespace's; synced is false until the first list has arrived.
	ServicesFor(namespace string) (services []crispec.Service, synced bool)
}

// errServicesNotSynced is the kubelet's refusal to build an API pod's env
// before the Services were listed once: KUBERNETES_SERVICE_HOST, which
// in-cluster clients need, would be missing for good.
var errServicesNotSynced = errors.New("services have not yet been read at least once, cannot construct envvars")

// serviceEnv is the pod's service environment, as the kubelet's
// getServiceEnvVarMap: none without an API server (a kubelet without one
// sets none either), the kubernetes Service always and the pod's
// namespace's Services with enableServiceLinks (the API's default, true,
// for a static pod that leaves it unset). Static pods do not wait for the
// first list, as with the kubelet.
func (d *envAPI) serviceEnv(pod *v1.Pod) (map[string]string, error) {
	if d.services == nil {
		return nil, nil
	}
	list, synced := d.services.ServicesFor(pod.Namespace)
	if !synced && !podsource.IsStatic(pod) {
		return nil, errServicesNotSynced
	}
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	return crispec.ServiceEnv(list, pod.Namespace, links), nil
}
