package cluster

import (
	"context"
	"sync"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	"knode.io/knode/internal/nodeinfo"
)

// nodeObject watches the node's own Node object (a list and watch with
// metadata.name=<node>, as the kubelet's node informer), so admission sees
// the labels and taints an administrator set without a request per pod.
type nodeObject struct {
	mu       sync.Mutex
	informer cache.SharedIndexInformer
}

func (n *Node) watchNode(ctx context.Context) {
	n.obj.mu.Lock()
	defer n.obj.mu.Unlock()
	if n.obj.informer != nil {
		return
	}
	lw := cache.NewListWatchFromClient(n.api.core, "nodes", metav1.NamespaceAll,
		fields.OneTermEqualSelector("metadata.name", n.facts.NodeName))
	n.obj.informer = cache.NewSharedIndexInformer(lw, &v1.Node{}, 0, cache.Indexers{})
	_ = n.obj.informer.SetTransform(stripManagedFields) // fails only once started
	go n.obj.informer.Run(ctx.Done())
}

// Node is the node as admission sees it: the Node object's labels and
// taints (until the watch has it, as the kubelet's initial node: knode's
// own labels and no taints), with the allocatable resources knode
// reports — and any extended resources an administrator added to the
// object's status, which the kubelet's admission counts too.
func (n *Node) Node() (*v1.Node, error) {
	node := &v1.Node{}
	n.obj.mu.Lock()
	inf := n.obj.informer
	n.obj.mu.Unlock()
	if inf != nil {
		if obj, ok, _ := inf.GetStore().GetByKey(n.facts.NodeName); ok {
			if cur, ok := obj.(*v1.Node); ok {
				node = cur.DeepCopy()
			}
		}
	}
	if node.Name == "" {
		node.Name = n.facts.NodeName
		node.Labels = nodeinfo.Labels(n.facts.NodeName, n.facts.Labels)
	}
	status := n.status()
	if node.Status.Allocatable == nil {
		node.Status.Allocatable = v1.ResourceList{}
	}
	for name, q := range status.Allocatable {
		node.Status.Allocatable[name] = q
	}
	return node, nil
}
