package pods

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
)

// APIObjects reads what ConfigMap, Secret and projected volumes need from
// the API server (cluster mode). Static pods have none of these volumes.
type APIObjects interface {
	ConfigMap(ctx context.Context, namespace, name string) (map[string][]byte, error)
	Secret(ctx context.Context, namespace, name string) (map[string][]byte, error)
	// ServiceAccountToken asks TokenRequest for a token bound to the pod.
	ServiceAccountToken(ctx context.Context, pod *v1.Pod, audience string, expirationSeconds int64) (string, error)
}

// apiVolume writes a ConfigMap, Secret or projected volume into the pod's
// directory, atomically, and returns its path.
func (m *Manager) apiVolume(pod *v1.Pod, vol *v1.Volume) (string, error) {
	if m.opts.APIObjects == nil {
		return "", fmt.Errorf("volume %q needs the API server (cluster mode)", vol.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.RequestTimeout)
	defer cancel()
	files := map[string][]byte{}
	var kind string
	var mode *int32
	addItems := func(data map[string][]byte, items []v1.KeyToPath, optional *bool, what string, err error) error {
		if err != nil {
			if optional != nil && *optional {
				return nil
			}
			return fmt.Errorf("volume %q: %s: %w", vol.Name, what, err)
		}
		if len(items) == 0 {
			for k, v := range data {
				files[k] = v
			}
			return nil
		}
		for _, it := range items {
			v, ok := data[it.Key]
			if !ok {
				if optional != nil && *optional {
					continue
				}
				return fmt.Errorf("volume %q: %s has no key %q", vol.Name, what, it.Key)
			}
			files[it.Path] = v
		}
		return nil
	}
	switch {
	case vol.ConfigMap != nil:
		kind, mode = "kubernetes.io~configmap", vol.ConfigMap.DefaultMode
		data, err := m.opts.APIObjects.ConfigMap(ctx, pod.Namespace, vol.ConfigMap.Name)
		if err := addItems(data, vol.ConfigMap.Items, vol.ConfigMap.Optional, "configmap "+vol.ConfigMap.Name, err); err != nil {
			return "", err
		}
	case vol.Secret != nil:
		kind, mode = "kubernetes.io~secret", vol.Secret.DefaultMode
		data, err := m.opts.APIObjects.Secret(ctx, pod.Namespace, vol.Secret.SecretName)
		if err := addItems(data, vol.Secret.Items, vol.Secret.Optional, "secret "+vol.Secret.SecretName, err); err != nil {
			return "", err
		}
	case vol.Projected != nil:
		kind, mode = "kubernetes.io~projected", vol.Projected.DefaultMode
		for _, src := range vol.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				data, err := m.opts.APIObjects.ConfigMap(ctx, pod.Namespace, src.ConfigMap.Name)
				if err := addItems(data, src.ConfigMap.Items, src.ConfigMap.Optional, "configmap "+src.ConfigMap.Name, err); err != nil {
					return "", err
				}
			case src.Secret != nil:
				data, err := m.opts.APIObjects.Secret(ctx, pod.Namespace, src.Secret.Name)
				if err := addItems(data, src.Secret.Items, src.Secret.Optional, "secret "+src.Secret.Name, err); err != nil {
					return "", err
				}
			case src.ServiceAccountToken != nil:
				exp := int64(3600)
				if src.ServiceAccountToken.ExpirationSeconds != nil {
					exp = *src.ServiceAccountToken.ExpirationSeconds
				}
				tok, err := m.opts.APIObjects.ServiceAccountToken(ctx, pod, src.ServiceAccountToken.Audience, exp)
				if err != nil {
					return "", fmt.Errorf("volume %q: service account token: %w", vol.Name, err)
				}
				files[src.ServiceAccountToken.Path] = []byte(tok)
			case src.DownwardAPI != nil:
				for _, it := range src.DownwardAPI.Items {
					if it.FieldRef == nil {
						return "", fmt.Errorf("volume %q: only fieldRef items are supported in downwardAPI projections", vol.Name)
					}
					v, err := m.podField(pod, it.FieldRef.FieldPath, "")
					if err != nil {
						return "", fmt.Errorf("volume %q: %w", vol.Name, err)
					}
					files[it.Path] = []byte(v)
				}
			default:
				return "", fmt.Errorf("volume %q: unsupported projected source", vol.Name)
			}
		}
	default:
		return "", fmt.Errorf("volume %q: unsupported volume type", vol.Name)
	}
	dir := filepath.Join(PodDir(m.opts.RootDir, pod), "volumes", kind, vol.Name)
	perm := os.FileMode(0o644)
	if mode != nil {
		perm = os.FileMode(*mode) & 0o777
	}
	if err := writeAtomic(dir, files, perm); err != nil {
		return "", fmt.Errorf("volume %q: %w", vol.Name, err)
	}
	return dir, nil
}

// writeAtomic publishes files the way the kubelet's atomic writer does: a
// new timestamped directory, then the ..data symlink swapped to it, and one
// symlink per top-level entry, so a reader never sees half an update.
func writeAtomic(dir string, files map[string][]byte, perm os.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts := filepath.Join(dir, "..knode_"+strconv.FormatInt(time.Now().UnixNano(), 10))
	for name, data := range files {
		clean := filepath.Clean(name)
		if filepath.IsAbs(clean) || clean == "." || strings.HasPrefix(clean, "..") {
			return fmt.Errorf("path %q must be relative and stay inside the volume", name)
		}
		p := filepath.Join(ts, clean)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, perm); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(ts, 0o755); err != nil {
		return err
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := os.Rename(tmpLink, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for name := range files {
		top := strings.SplitN(filepath.Clean(name), string(filepath.Separator), 2)[0]
		link := filepath.Join(dir, top)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", top), link); err != nil {
			return err
		}
	}
	if old != "" && old != filepath.Base(ts) {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}
