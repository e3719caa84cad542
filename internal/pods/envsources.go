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
	r := envReader{objects: d.objects, ns: pod.Namespace,
		configMaps: map[string]map[string]string{}, secrets: map[string]map[string][]byte{}}
	src.From = make([]map[string]string, len(c.EnvFrom))
	for i, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			data, err := r.configMap(ctx, ef.ConfigMapRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && isTrue(ef.ConfigMapRef.Optional) {
					continue
				}
				return src, err
			}
			src.From[i] = data
		case ef.SecretRef != nil:
			data, err := r.secret(ctx, ef.SecretRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && isTrue(ef.SecretRef.Optional) {
					continue
				}
				return src, err
			}
			m := make(map[string]string, len(data))
			for k, v := range data {
				m[k] = string(v)
			}
			src.From[i] = m
		}
	}
	src.Refs = map[int]string{}
	for i, e := range c.Env {
		// A literal value wins over valueFrom in the kubelet.
		if e.Value != "" || e.ValueFrom == nil {
			continue
		}
		switch {
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			optional := isTrue(ref.Optional)
			data, err := r.configMap(ctx, ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return src, err
			}
			v, ok := data[ref.Key]
			if !ok {
				if optional {
					continue
				}
				return src, fmt.Errorf("couldn't find key %v in ConfigMap %v/%v", ref.Key, pod.Namespace, ref.Name)
			}
			src.Refs[i] = v
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			optional := isTrue(ref.Optional)
			data, err := r.secret(ctx, ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return src, err
			}
			v, ok := data[ref.Key]
			if !ok {
				if optional {
					continue
				}
				return src, fmt.Errorf("couldn't find key %v in Secret %v/%v", ref.Key, pod.Namespace, ref.Name)
			}
			src.Refs[i] = string(v)
		}
	}
	return src, nil
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

// envReader reads each object once for one container's env.
type envReader struct {
	objects    APIObjects
	ns         string
	configMaps map[string]map[string]string
	secrets    map[string]map[string][]byte
}

// configMap returns a ConfigMap's data. Not found is the kubelet's error
// (its object cache names the resource in the singular: `configmap "x"
// not found`), so apierrors.IsNotFound holds and the message matches.
func (r *envReader) configMap(ctx context.Context, name string) (map[string]string, error) {
	if data, ok := r.configMaps[name]; ok {
		return data, nil
	}
	if r.objects == nil {
		return nil, fmt.Errorf("couldn't get configMap %v/%v, no kubeClient defined", r.ns, name)
	}
	data, err := r.objects.ConfigMapData(ctx, r.ns, name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmap"}, name)
		}
		return nil, fmt.Errorf("get configmap %s/%s: %w", r.ns, name, err)
	}
	r.configMaps[name] = data
	return data, nil
}

// secret returns a Secret's data; not found as for configMap.
func (r *envReader) secret(ctx context.Context, name string) (map[string][]byte, error) {
	if data, ok := r.secrets[name]; ok {
		return data, nil
	}
	if r.objects == nil {
		return nil, fmt.Errorf("couldn't get secret %v/%v, no kubeClient defined", r.ns, name)
	}
	data, err := r.objects.Secret(ctx, r.ns, name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secret"}, name)
		}
		return nil, fmt.Errorf("get secret %s/%s: %w", r.ns, name, err)
	}
	r.secrets[name] = data
	return data, nil
}
