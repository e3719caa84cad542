package cluster

import (
	"k8s.io/apimachinery/pkg/api/meta"
)

// stripManagedFields is the informers' transform: it drops an object's
// managedFields before the informer caches it. They record which client
// set which field (server-side apply) and can be as large as the rest of
// the object; knode never reads them, and a cached pod is deep-copied on
// every change of any bound pod, so without them each copy is smaller too.
// Objects that are not API objects (a tombstone) pass unchanged.
func stripManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil && a.GetManagedFields() != nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}
