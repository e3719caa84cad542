package cluster

import (
	"context"
	"fmt"
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// api is knode's client for the few API groups it uses. It is built on
// rest.RESTClient with a scheme holding only those groups: client-go's
// typed clients link every API group's types (client-go/kubernetes/scheme),
// which cost knode a third of its memory even in standalone mode.
type api struct {
	core, coordination, authentication, authorization, node *rest.RESTClient
}

// RequestObserver is told of each request to the API server: its method,
// host and status code (0 when no answer came).
type RequestObserver interface {
	APIRequest(method, host string, code int)
}

// countingTransport tells a RequestObserver of every round trip.
type countingTransport struct {
	next    http.RoundTripper
	observe RequestObserver
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	code := 0
	if err == nil {
		code = resp.StatusCode
	}
	t.observe.APIRequest(req.Method, req.URL.Host, code)
	return resp, err
}

func newAPI(kubeconfig, userAgent string, requests RequestObserver) (*api, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.UserAgent = userAgent
	// The kubelet's kubeAPIQPS and kubeAPIBurst defaults (client-go's own, 5
	// and 10, would queue a burst of pod starts behind each other).
	cfg.QPS, cfg.Burst = 50, 100
	if requests != nil {
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, observe: requests} })
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{v1.AddToScheme, coordinationv1.AddToScheme, authenticationv1.AddToScheme, authorizationv1.AddToScheme, nodev1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("scheme: %w", err)
		}
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(scheme)
	client := func(gv schema.GroupVersion, apiPath string) (*rest.RESTClient, error) {
		c := rest.CopyConfig(cfg)
		c.GroupVersion, c.APIPath = &gv, apiPath
		c.NegotiatedSerializer = codecs.WithoutConversion()
		c.ContentType = runtime.ContentTypeJSON
		return rest.RESTClientFor(c)
	}
	a := &api{}
	for _, x := range []struct {
		dst  **rest.RESTClient
		gv   schema.GroupVersion
		path string
	}{
		{&a.core, v1.SchemeGroupVersion, "/api"},
		{&a.coordination, coordinationv1.SchemeGroupVersion, "/apis"},
		{&a.authentication, authenticationv1.SchemeGroupVersion, "/apis"},
		{&a.authorization, authorizationv1.SchemeGroupVersion, "/apis"},
		{&a.node, nodev1.SchemeGroupVersion, "/apis"},
	} {
		if *x.dst, err = client(x.gv, x.path); err != nil {
			return nil, fmt.Errorf("%s client: %w", x.gv, err)
		}
	}
	return a, nil
}

func (a *api) getNode(ctx context.Context, name string) (*v1.Node, error) {
	out := &v1.Node{}
	return out, a.core.Get().Resource("nodes").Name(name).Do(ctx).Into(out)
}

func (a *api) createNode(ctx context.Context, node *v1.Node) error {
	return a.core.Post().Resource("nodes").Body(node).Do(ctx).Error()
}

func (a *api) updateNode(ctx context.Context, node *v1.Node, subresource ...string) error {
	return a.core.Put().Resource("nodes").Name(node.Name).SubResource(subresource...).Body(node).Do(ctx).Error()
}

func (a *api) getLease(ctx context.Context, ns, name string) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	return out, a.coordination.Get().Namespace(ns).Resource("leases").Name(name).Do(ctx).Into(out)
}

func (a *api) createLease(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	if err := a.coordination.Post().Namespace(l.Namespace).Resource("leases").Body(l).Do(ctx).Into(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (a *api) updateLease(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	if err := a.coordination.Put().Namespace(l.Namespace).Resource("leases").Name(l.Name).Body(l).Do(ctx).Into(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (a *api) patchPodStatus(ctx context.Context, ns, name string, body []byte) error {
	return a.core.Patch(types.MergePatchType).Namespace(ns).Resource("pods").Name(name).SubResource("status").Body(body).Do(ctx).Error()
}

func (a *api) createPod(ctx context.Context, pod *v1.Pod) error {
	return a.core.Post().Namespace(pod.Namespace).Resource("pods").Body(pod).Do(ctx).Error()
}

func (a *api) deletePod(ctx context.Context, ns, name string, uid types.UID) error {
	grace := int64(0)
	opts := &metav1.DeleteOptions{GracePeriodSeconds: &grace, Preconditions: &metav1.Preconditions{UID: &uid}}
	return a.core.Delete().Namespace(ns).Resource("pods").Name(name).Body(opts).Do(ctx).Error()
}

func (a *api) getConfigMap(ctx context.Context, ns, name string) (*v1.ConfigMap, error) {
	out := &v1.ConfigMap{}
	return out, a.core.Get().Namespace(ns).Resource("configmaps").Name(name).Do(ctx).Into(out)
}

func (a *api) getRuntimeClass(ctx context.Context, name string) (*nodev1.RuntimeClass, error) {
	out := &nodev1.RuntimeClass{}
	return out, a.node.Get().Resource("runtimeclasses").Name(name).Do(ctx).Into(out)
}

func (a *api) getSecret(ctx context.Context, ns, name string) (*v1.Secret, error) {
	out := &v1.Secret{}
	return out, a.core.Get().Namespace(ns).Resource("secrets").Name(name).Do(ctx).Into(out)
}

func (a *api) createToken(ctx context.Context, ns, sa string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	out := &authenticationv1.TokenRequest{}
	return out, a.core.Post().Namespace(ns).Resource("serviceaccounts").Name(sa).SubResource("token").Body(req).Do(ctx).Into(out)
}

func (a *api) tokenReview(ctx context.Context, r *authenticationv1.TokenReview) (*authenticationv1.TokenReview, error) {
	out := &authenticationv1.TokenReview{}
	return out, a.authentication.Post().Resource("tokenreviews").Body(r).Do(ctx).Into(out)
}

func (a *api) subjectAccessReview(ctx context.Context, r *authorizationv1.SubjectAccessReview) (*authorizationv1.SubjectAccessReview, error) {
	out := &authorizationv1.SubjectAccessReview{}
	return out, a.authorization.Post().Resource("subjectaccessreviews").Body(r).Do(ctx).Into(out)
}
