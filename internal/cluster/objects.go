package cluster

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
)

// ConfigMap reads a ConfigMap's data and binary data, for volumes.
func (n *Node) ConfigMap(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	cm, err := n.api.getConfigMap(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		out[k] = v
	}
	return out, nil
}

// ConfigMapData reads a ConfigMap's data alone, for env sources (the
// kubelet puts no binaryData into env).
func (n *Node) ConfigMapData(ctx context.Context, namespace, name string) (map[string]string, error) {
	cm, err := n.api.getConfigMap(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return cm.Data, nil
}

// Secret reads a Secret's data, for volumes and env sources.
func (n *Node) Secret(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	s, err := n.api.getSecret(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return s.Data, nil
}

// ServiceAccountToken asks TokenRequest for a token bound to the pod, as
// the kubelet does for projected service account tokens.
func (n *Node) ServiceAccountToken(ctx context.Context, pod *v1.Pod, audience string, expirationSeconds int64) (string, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &expirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if audience != "" {
		req.Spec.Audiences = []string{audience}
	}
	tr, err := n.api.createToken(ctx, pod.Namespace, sa, req)
	if err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// BoundPods lists, once, the pods the API server bound to node; for
// one-shot tools such as `knode doctor`, which run beside the agent.
func BoundPods(ctx context.Context, kubeconfig, node string) ([]v1.Pod, error) {
	a, err := newAPI(kubeconfig, "knode-doctor", nil)
	if err != nil {
		return nil, err
	}
	list := &v1.PodList{}
	err = a.core.Get().Resource("pods").Param("fieldSelector", "spec.nodeName="+node).Do(ctx).Into(list)
	if err != nil {
		return nil, fmt.Errorf("list pods bound to %s: %w", node, err)
	}
	return list.Items, nil
}
