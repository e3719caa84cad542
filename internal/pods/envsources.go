package pods

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"knode.io/knode/internal/crispec"
)

// envSources reads the ConfigMaps and Secrets a container's envFrom and
// configMapKeyRef/secretKeyRef name, as the kubelet's
// makeEnvironmentVariables does: each object once per container, a missing
// optional object or key left out, and a missing required one an error
// with the kubelet's message (the container then waits in
// CreateContainerConfigError). Static pods never get here with such
// references: their validation refuses them, as the API server's node
// restriction refuses their mirror pods.
func (d *envAPI) envSources(pod *v1.Pod, c *v1.Container) (crispec.EnvSources, error) {
	var src crispec.EnvSources
	if len(c.EnvFrom) == 0 && !hasKeyRefs(c) {
		return src, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.RequestTimeout)
	defer cancel()
	r := envReader{objects: d.objects, ns: pod.Namespace, read: map[[2]string]map[string]string{}}
	src.From = make([]map[string]string, len(c.EnvFrom))
	for i, ef := range c.EnvFrom {
		ref, optional, ok := envFromRef(ef)
		if !ok {
			continue
		}
		data, err := r.data(ctx, ref, optional)
		if err != nil {
			return src, err
		}
		src.From[i] = data
	}
	src.Refs = map[int]string{}
	for i, e := range c.Env {
		// A literal value wins over valueFrom in the kubelet.
		if e.Value != "" || e.ValueFrom == nil {
			continue
		}
		ref, key, optional, ok := envKeyRef(e.ValueFrom)
		if !ok {
			continue
		}
		data, err := r.data(ctx, ref, optional)
		if err != nil {
			return src, err
		}
		v, ok := data[key]
		if !ok {
			if optional {
				continue
			}
			return src, fmt.Errorf("couldn't find key %v in %s %v/%v", key, ref.kind.name, pod.Namespace, ref.name)
		}
		src.Refs[i] = v
	}
	return src, nil
}

// envFromRef is the object an envFrom entry names.
func envFromRef(ef v1.EnvFromSource) (ref envRef, optional, ok bool) {
	switch {
	case ef.ConfigMapRef != nil:
		return envRef{configMapEnv, ef.ConfigMapRef.Name}, isTrue(ef.ConfigMapRef.Optional), true
	case ef.SecretRef != nil:
		return envRef{secretEnv, ef.SecretRef.Name}, isTrue(ef.SecretRef.Optional), true
	}
	return envRef{}, false, false
}

// envKeyRef is the object and key a configMapKeyRef or secretKeyRef names.
func envKeyRef(from *v1.EnvVarSource) (ref envRef, key string, optional, ok bool) {
	switch {
	case from.ConfigMapKeyRef != nil:
		k := from.ConfigMapKeyRef
		return envRef{configMapEnv, k.Name}, k.Key, isTrue(k.Optional), true
	case from.SecretKeyRef != nil:
		k := from.SecretKeyRef
		return envRef{secretEnv, k.Name}, k.Key, isTrue(k.Optional), true
	}
	return envRef{}, "", false, false
}

func hasKeyRefs(c *v1.Container) bool {
	for _, e := range c.Env {
		if e.ValueFrom != nil && (e.ValueFrom.ConfigMapKeyRef != nil || e.ValueFrom.SecretKeyRef != nil) {
			return true
		}
	}
	return false
}

func isTrue(b *bool) bool { return b != nil && *b }

// envKind is ConfigMaps or Secrets as env sources read them, with the
// names the kubelet's messages use for each.
type envKind struct {
	// name is the kind in "couldn't find key" messages (ConfigMap).
	name string
	// client is the kind in the no-client message (configMap).
	client string
	// resource is the kind in not-found and read errors (configmap): the
	// kubelet's object cache names the resource in the singular.
	resource string
	get      func(ctx context.Context, o APIObjects, ns, name string) (map[string]string, error)
}

var (
	configMapEnv = envKind{name: "ConfigMap", client: "configMap", resource: "configmap",
		get: func(ctx context.Context, o APIObjects, ns, name string) (map[string]string, error) {
			return o.ConfigMapData(ctx, ns, name)
		}}
	secretEnv = envKind{name: "Secret", client: "secret", resource: "secret",
		get: func(ctx context.Context, o APIObjects, ns, name string) (map[string]string, error) {
			data, err := o.Secret(ctx, ns, name)
			if err != nil {
				return nil, err
			}
			m := make(map[string]string, len(data))
			for k, v := range data {
				m[k] = string(v)
			}
			return m, nil
		}}
)

// envRef names one ConfigMap or Secret of the pod's namespace.
type envRef struct {
	kind envKind
	name string
}

// envReader reads each object once for one container's env.
type envReader struct {
	objects APIObjects
	ns      string
	// read holds what was read, by resource and name.
	read map[[2]string]map[string]string
}

// data returns an object's data, nil for an optional object that is not
// found. Not found is the kubelet's error (`configmap "x" not found`), so
// apierrors.IsNotFound holds and the message matches.
func (r *envReader) data(ctx context.Context, ref envRef, optional bool) (map[string]string, error) {
	key := [2]string{ref.kind.resource, ref.name}
	if data, ok := r.read[key]; ok {
		return data, nil
	}
	if r.objects == nil {
		return nil, fmt.Errorf("couldn't get %s %v/%v, no kubeClient defined", ref.kind.client, r.ns, ref.name)
	}
	data, err := ref.kind.get(ctx, r.objects, r.ns, ref.name)
	switch {
	case apierrors.IsNotFound(err) && optional:
		return nil, nil
	case apierrors.IsNotFound(err):
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: ref.kind.resource}, ref.name)
	case err != nil:
		return nil, fmt.Errorf("get %s %s/%s: %w", ref.kind.resource, r.ns, ref.name, err)
	}
	r.read[key] = data
	return data, nil
}
