package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// How long a RuntimeClass lookup is kept. A RuntimeClass's handler cannot
// change (the API server refuses an update of it), so a found one is kept
// longer; one not found is asked again soon, since it may be created.
const (
	runtimeClassFoundTTL    = 5 * time.Minute
	runtimeClassNotFoundTTL = 10 * time.Second
	// runtimeClassCacheMax bounds the cache; the names come from the
	// pods bound to this node, so it is never reached in practice.
	runtimeClassCacheMax = 256
)

// RuntimeClasses resolves a pod's runtimeClassName to the CRI runtime
// handler through the RuntimeClass object (node.k8s.io/v1), as the
// kubelet's runtimeclass manager does, with a GET and a small cache
// instead of an informer: a node needs only the few classes its pods name,
// and a watch of all would cost memory on every node for nothing.
type RuntimeClasses struct {
	api *api
	now func() time.Time

	mu    sync.Mutex
	cache map[string]runtimeClassEntry
}

type runtimeClassEntry struct {
	handler string
	err     error
	expires time.Time
}

// NewRuntimeClasses makes the node's RuntimeClass resolver.
func (n *Node) NewRuntimeClasses() *RuntimeClasses {
	return &RuntimeClasses{api: n.api, now: time.Now, cache: map[string]runtimeClassEntry{}}
}

// RuntimeHandler is the handler of the RuntimeClass name. A class that does
// not exist gives the API server's NotFound error (the kubelet's
// "runtimeclass... not found"), any other failure the kubelet's "failed to
// lookup RuntimeClass" error; the pod's sandbox is then not created.
func (r *RuntimeClasses) RuntimeHandler(ctx context.Context, name string) (string, error) {
	now := r.now()
	r.mu.Lock()
	e, ok := r.cache[name]
	r.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.handler, e.err
	}
	rc, err := r.api.getRuntimeClass(ctx, name)
	switch {
	case err == nil:
		e = runtimeClassEntry{handler: rc.Handler, expires: now.Add(runtimeClassFoundTTL)}
	case apierrors.IsNotFound(err):
		e = runtimeClassEntry{err: err, expires: now.Add(runtimeClassNotFoundTTL)}
	default:
		// Not kept: the next sync asks again.
		return "", fmt.Errorf("failed to lookup RuntimeClass %s: %w", name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) >= runtimeClassCacheMax {
		for k, old := range r.cache {
			if !now.Before(old.expires) {
				delete(r.cache, k)
			}
		}
		if len(r.cache) >= runtimeClassCacheMax {
			clear(r.cache)
		}
	}
	r.cache[name] = e
	return e.handler, e.err
}
