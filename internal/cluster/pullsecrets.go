package cluster

import (
	"context"

	"knode.io/knode/internal/keyring"
)

// PullSecret reads an image pull secret: only kubernetes.io/dockerconfigjson
// and kubernetes.io/dockercfg secrets carry registry credentials, so the
// type decides how the data is read, and the UID tells a recreated secret
// from the one that pulled an image. The node authorizer lets a node read
// the secrets its pods name.
func (n *Node) PullSecret(ctx context.Context, namespace, name string) (keyring.Secret, error) {
	s, err := n.api.getSecret(ctx, namespace, name)
	if err != nil {
		return keyring.Secret{}, err
	}
	return keyring.Secret{Namespace: s.Namespace, Name: s.Name, UID: string(s.UID), Type: s.Type, Data: s.Data}, nil
}
