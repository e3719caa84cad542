package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"knode.io/knode/internal/podsource"
)

// PodStatuses gives the live status of the pods knode runs.
type PodStatuses interface {
	Pods() []*v1.Pod
	// PodsVersion changes whenever Pods' answer does.
	PodsVersion() uint64
	// PodsChanged is closed at the next change.
	PodsChanged() <-chan struct{}
}

// Pods watches the pods bound to this node and reports their status back.
type Pods struct {
	node     *Node
	informer cache.SharedIndexInformer
	log      *slog.Logger
}

// NewPods watches pods with spec.nodeName = this node.
func (n *Node) NewPods() *Pods {
	lw := cache.NewListWatchFromClient(n.api.core, "pods", metav1.NamespaceAll,
		fields.OneTermEqualSelector("spec.nodeName", n.facts.NodeName))
	inf := cache.NewSharedIndexInformer(lw, &v1.Pod{}, 0, cache.Indexers{})
	_ = inf.SetTransform(stripManagedFields) // fails only once started
	return &Pods{node: n, informer: inf, log: n.log}
}

// Run feeds sink with every change and patches statuses until ctx ends.
func (p *Pods) Run(ctx context.Context, sink podsource.Sink, statuses PodStatuses) {
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	_, _ = p.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	})
	go p.informer.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), p.informer.HasSynced) {
		return
	}
	notify()
	reported := map[types.UID]v1.PodStatus{}
	var lastVersion uint64
	var lastMirrorSync time.Time
	pending := false
	report := func() {
		lastVersion = statuses.PodsVersion()
		all := statuses.Pods()
		p.syncMirrors(ctx, all)
		pending = !p.patchStatuses(ctx, all, reported)
	}
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			sink.SetPods(podsource.API, apiPods(p.informer.GetStore().List()))
		case <-statuses.PodsChanged():
			// Written at once, as the kubelet's status manager does.
			report()
		case <-ticker.C:
			// A failed write (the API server away) is retried at the next tick.
			if pending || statuses.PodsVersion() != lastVersion {
				report()
			} else if time.Since(lastMirrorSync) > 10*time.Second {
				// Mirror pods deleted by someone else come back.
				p.syncMirrors(ctx, statuses.Pods())
				lastMirrorSync = time.Now()
			}
		}
	}
}

// apiPods are copies of the bound pods knode runs, each marked as coming
// from the API server (kubernetes.io/config.source: api) whatever its
// author wrote there, as the kubelet's pod config marks them: a pod that
// claimed "file" would pass for a static pod, which knode trusts further
// (restores without the ContainerCheckpoint gate, eviction, mirror pods).
func apiPods(objs []any) []*v1.Pod {
	var pods []*v1.Pod
	for _, obj := range objs {
		pod, ok := obj.(*v1.Pod)
		// Mirror pods stand for static pods, which knode runs from their files.
		if !ok || podsource.IsMirror(pod) {
			continue
		}
		pods = append(pods, pod.DeepCopy())
	}
	podsource.Stamp(podsource.API, pods)
	return pods
}

// patchStatuses writes each API pod's status when it changed; it reports
// whether every write went through.
func (p *Pods) patchStatuses(ctx context.Context, pods []*v1.Pod, reported map[types.UID]v1.PodStatus) bool {
	allWritten := true
	for _, pod := range pods {
		obj, found, _ := p.informer.GetStore().GetByKey(pod.Namespace + "/" + pod.Name)
		if !found {
			continue // no object yet (a mirror pod is created first)
		}
		// Keyed by the object's UID: a recreated mirror pod gets its status again.
		objUID := obj.(*v1.Pod).UID
		if prev, seen := reported[objUID]; seen && reflect.DeepEqual(prev, pod.Status) {
			continue
		}
		body, err := json.Marshal(map[string]any{"status": withForeignConditions(pod.Status, obj.(*v1.Pod))})
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err = p.node.api.patchPodStatus(cctx, pod.Namespace, pod.Name, body)
		cancel()
		if err != nil {
			p.log.Warn("pod status update failed", "pod", pod.Namespace+"/"+pod.Name, "err", err)
			allWritten = false
			continue
		}
		reported[objUID] = pod.Status
	}
	return allWritten
}

// Removed deletes a terminated API pod's object with grace 0, as the kubelet
// does once the pod's containers are gone.
func (p *Pods) Removed(uid types.UID) {
	for _, obj := range p.informer.GetStore().List() {
		pod := obj.(*v1.Pod)
		if pod.UID != uid || pod.DeletionTimestamp == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := p.node.api.deletePod(ctx, pod.Namespace, pod.Name, uid)
		cancel()
		if err != nil && !apierrors.IsNotFound(err) {
			p.log.Warn("deleting the pod object failed", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		}
	}
}

// withForeignConditions is st with the conditions others own (a readiness
// gate's, set by a controller) as the object has them now: a merge patch
// replaces the whole list, and the kubelet keeps what it does not own. A
// condition both write (DisruptionTarget) is the node's when it has one.
func withForeignConditions(st v1.PodStatus, obj *v1.Pod) v1.PodStatus {
	conds := make([]v1.PodCondition, 0, len(st.Conditions)+len(obj.Status.Conditions))
	ours := map[v1.PodConditionType]bool{}
	for _, c := range st.Conditions {
		if podsource.IsKubeletCondition(c.Type) || podsource.IsNodeSharedCondition(c) {
			conds = append(conds, c)
			ours[c.Type] = true
		}
	}
	for _, c := range obj.Status.Conditions {
		if !podsource.IsKubeletCondition(c.Type) && !ours[c.Type] {
			conds = append(conds, c)
		}
	}
	st.Conditions = conds
	return st
}
