package cluster

import (
	"context"

	v1 "k8s.io/api/core/v1"
)

// PullSecret reads an image pull secret's type and data: only
// kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg secrets carry
// registry credentials, so the type decides how the data is read. The node
// authorizer lets a node read the secrets its pods name.
func (n *Node) PullSecret(ctx context.Context, namespace, name string) (v1.SecretType, map[string][]byte, error) {
	s, err := n.api.getSecret(ctx, namespace, name)
	if err != nil {
		return "", nil, err
	}
	return s.Type, s.Data, nil
}
