package cluster

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"knode.io/knode/internal/podsource"
)

// syncMirrors makes the API hold one mirror pod per static pod, as the
// kubelet does: created when missing, replaced when the manifest changed
// (its hash differs), deleted when the static pod is gone.
func (p *Pods) syncMirrors(ctx context.Context, pods []*v1.Pod) {
	want := map[string]*v1.Pod{}
	for _, pod := range pods {
		if podsource.IsStatic(pod) {
			want[pod.Namespace+"/"+pod.Name] = pod
		}
	}
	have := map[string]*v1.Pod{}
	for _, obj := range p.informer.GetStore().List() {
		if m := obj.(*v1.Pod); podsource.IsMirror(m) {
			have[m.Namespace+"/"+m.Name] = m
		}
	}
	for key, m := range have {
		static, ok := want[key]
		if ok && m.Annotations[podsource.MirrorAnnotation] == static.Annotations[podsource.HashAnnotation] && m.DeletionTimestamp == nil {
			continue
		}
		if m.DeletionTimestamp != nil && ok {
			continue // being deleted; recreated when gone
		}
		uid := m.UID
		dctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := p.node.api.deletePod(dctx, m.Namespace, m.Name, uid)
		cancel()
		if err != nil && !apierrors.IsNotFound(err) {
			p.log.Warn("deleting a mirror pod failed", "pod", key, "err", err)
		}
		delete(have, key)
	}
	for key, static := range want {
		if _, ok := have[key]; ok {
			continue
		}
		mirror := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: static.Name, Namespace: static.Namespace, Labels: static.Labels,
				Annotations: map[string]string{},
				// NodeRestriction admits a mirror pod only with its node as controller.
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: p.node.facts.NodeName,
					UID: p.node.uid(ctx), Controller: ptr.To(true)}},
			},
			Spec: *static.Spec.DeepCopy(),
		}
		for k, v := range static.Annotations {
			mirror.Annotations[k] = v
		}
		mirror.Annotations[podsource.MirrorAnnotation] = static.Annotations[podsource.HashAnnotation]
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := p.node.api.createPod(cctx, mirror)
		cancel()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			p.log.Warn("creating a mirror pod failed", "pod", key, "err", err)
		}
	}
}

// uid is the Node object's UID, for owner references.
func (n *Node) uid(ctx context.Context) types.UID {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	node, err := n.api.getNode(ctx, n.facts.NodeName)
	if err != nil {
		return ""
	}
	return node.UID
}
