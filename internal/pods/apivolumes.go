package pods

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// APIObjects reads what ConfigMap, Secret and projected volumes need from
// the API server (cluster mode). Static pods have none of these volumes.
type APIObjects interface {
	ConfigMap(ctx context.Context, namespace, name string) (map[string][]byte, error)
	Secret(ctx context.Context, namespace, name string) (map[string][]byte, error)
	// ServiceAccountToken asks TokenRequest for a token bound to the pod.
	ServiceAccountToken(ctx context.Context, pod *v1.Pod, audience string, expirationSeconds int64) (string, error)
}

// apiVolumeState is what knode keeps of one API-backed volume.
type apiVolumeState struct {
	// digest is of the content last written; an unchanged refresh writes nothing.
	digest [sha256.Size]byte
	// tokens are the service account tokens in the volume, by file path.
	tokens map[string]issuedToken
}

// issuedToken is a projected service account token and when to renew it:
// at 80% of its lifetime or after 24 hours, the kubelet's rule.
type issuedToken struct {
	token   string
	renewAt time.Time
}

func tokenRenewal(now time.Time, expirationSeconds int64) time.Time {
	life := time.Duration(expirationSeconds) * time.Second * 8 / 10
	return now.Add(min(life, 24*time.Hour))
}

func (m *Manager) apiVolumeState(uid types.UID, volume string) *apiVolumeState {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.apiVolumes[uid] == nil {
		m.apiVolumes[uid] = map[string]*apiVolumeState{}
	}
	st := m.apiVolumes[uid][volume]
	if st == nil {
		st = &apiVolumeState{tokens: map[string]issuedToken{}}
		m.apiVolumes[uid][volume] = st
	}
	return st
}

// refreshAPIVolumes brings a running pod's ConfigMap, Secret and projected
// volumes up to date. A volume whose objects cannot be read keeps its
// content, as with the kubelet.
func (m *Manager) refreshAPIVolumes(pod *v1.Pod) {
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		if vol.ConfigMap == nil && vol.Secret == nil && vol.Projected == nil {
			continue
		}
		if _, err := m.apiVolume(pod, vol); err != nil {
			m.log.Warn("volume refresh failed; the old content stays", "pod", podRef(pod, nil), "volume", vol.Name, "err", err)
		}
	}
}

// apiVolume writes a ConfigMap, Secret or projected volume into the pod's
// directory, atomically, and returns its path. Content that has not changed
// since the last write is not written again.
func (m *Manager) apiVolume(pod *v1.Pod, vol *v1.Volume) (string, error) {
	if m.opts.APIObjects == nil {
		return "", fmt.Errorf("volume %q needs the API server (cluster mode)", vol.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.RequestTimeout)
	defer cancel()
	state := m.apiVolumeState(pod.UID, vol.Name)
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
				path := src.ServiceAccountToken.Path
				issued, ok := state.tokens[path]
				if now := m.opts.Now(); !ok || !now.Before(issued.renewAt) {
					tok, err := m.opts.APIObjects.ServiceAccountToken(ctx, pod, src.ServiceAccountToken.Audience, exp)
					if err != nil {
						return "", fmt.Errorf("volume %q: service account token: %w", vol.Name, err)
					}
					issued = issuedToken{token: tok, renewAt: tokenRenewal(now, exp)}
					state.tokens[path] = issued
				}
				files[path] = []byte(issued.token)
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
	digest := contentDigest(files, perm)
	if _, err := os.Lstat(filepath.Join(dir, "..data")); err == nil && digest == state.digest {
		return dir, nil
	}
	if err := writeAtomic(dir, files, perm); err != nil {
		return "", fmt.Errorf("volume %q: %w", vol.Name, err)
	}
	state.digest = digest
	return dir, nil
}

// contentDigest identifies a volume's files, names and mode included.
func contentDigest(files map[string][]byte, perm os.FileMode) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%o\n", perm)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(h, "%d:%s%d:", len(name), name, len(files[name]))
		h.Write(files[name])
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
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
	// A key gone from the object goes from the volume too.
	tops := map[string]bool{}
	for name := range files {
		tops[strings.SplitN(filepath.Clean(name), string(filepath.Separator), 2)[0]] = true
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") || tops[e.Name()] {
			continue
		}
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, "..data"+string(filepath.Separator)) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if old != "" && old != filepath.Base(ts) {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}
