package cluster

import (
	"context"
	"fmt"
	"net"
	"strconv"

	v1 "k8s.io/api/core/v1"
)

// defaultKubeletPort is the kubelet's port when a Node does not say.
const defaultKubeletPort = 10250

// NodeEndpoints lists every Node's addresses, each with the node's kubelet
// port (status.daemonEndpoints), as host:port: the peers a node pulls
// checkpoint archives from in cluster mode. Read from the API server on
// each call: migrations are rare, and a removed node must stop counting.
func (n *Node) NodeEndpoints(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	list := &v1.NodeList{}
	if err := n.api.core.Get().Resource("nodes").Do(ctx).Into(list); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var out []string
	for _, node := range list.Items {
		port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
		if port == 0 {
			port = defaultKubeletPort
		}
		for _, a := range node.Status.Addresses {
			if a.Address != "" {
				out = append(out, net.JoinHostPort(a.Address, strconv.Itoa(int(port))))
			}
		}
	}
	return out, nil
}
