package admission

import (
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalNode is the node of a standalone knode, which has no Node object:
// its name, its labels (the kubelet's well-known ones and --node-labels),
// no taints, and what Allocatable returns at the time of each admission.
type LocalNode struct {
	Name        string
	Labels      map[string]string
	Allocatable func() v1.ResourceList
}

// Node builds the node.
func (l *LocalNode) Node() (*v1.Node, error) {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: l.Name, Labels: l.Labels},
		Status:     v1.NodeStatus{Allocatable: l.Allocatable()},
	}, nil
}
