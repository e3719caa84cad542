// Package apivolume assembles the content of the volumes the kubelet fills
// from the API and from the pod itself — ConfigMap, Secret, projected and
// downwardAPI — and publishes it in the pod's directory with the atomic
// writer. Secret, projected and downwardAPI volumes live on tmpfs, as the
// kubelet's do (their wrapped emptyDir has medium Memory), so a secret
// never reaches a disk; ConfigMap volumes are plain directories.
//
// The volume directories are mounted into containers, read-only; the
// writer still treats what it finds in them as hostile (see atomicwriter).
package apivolume

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"knode.io/knode/internal/atomicwriter"
	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/safefs"
)

// Objects reads what ConfigMap, Secret and projected volumes need from the
// API server (cluster mode).
type Objects interface {
	ConfigMap(ctx context.Context, namespace, name string) (map[string][]byte, error)
	Secret(ctx context.Context, namespace, name string) (map[string][]byte, error)
	// ServiceAccountToken asks TokenRequest for a token bound to the pod.
	ServiceAccountToken(ctx context.Context, pod *v1.Pod, audience string, expirationSeconds int64) (string, error)
}

// Config is what the volumes need from their consumer.
type Config struct {
	// Objects reads API objects; nil without an API server, and then only
	// downwardAPI volumes (and projections of it alone) can be written.
	Objects Objects
	// PodField resolves a downward API fieldRef path that names one value
	// (metadata.name, metadata.labels['k'], ...), as env vars see it.
	PodField func(pod *v1.Pod, fieldPath string) (string, error)
	// ResourceField resolves a resourceFieldRef; its containerName is set.
	ResourceField func(pod *v1.Pod, ref *v1.ResourceFieldSelector) (string, error)
	// Now is the clock for token renewal and the writer's directory names.
	Now func() time.Time
	Log *slog.Logger
}

// DefaultMode is the API's default for defaultMode, used when a pod (a
// static pod, not defaulted by an API server) leaves it out.
const DefaultMode = 0o644

// Volumes writes and refreshes the API-object volumes of all pods. It
// keeps nothing per pod: what a pod's volumes need between refreshes is a
// PodState its owner (the pod's record) keeps and drops with the pod.
type Volumes struct {
	cfg Config
	// readBacks counts the writes that checked a volume by reading it back
	// (the rest found it unchanged by its stamp).
	readBacks atomic.Uint64
}

// PodState is what is kept of one pod's volumes between refreshes, by
// volume name. Its owner drops it when the pod is gone; nothing else
// holds it.
type PodState struct {
	mu   sync.Mutex
	vols map[string]*volumeState
}

// NewPodState returns the empty state of a pod's volumes.
func NewPodState() *PodState {
	return &PodState{vols: map[string]*volumeState{}}
}

// volumeState is what is kept of one volume between refreshes.
type volumeState struct {
	// mu serialises writes of the volume (its writer and its tokens).
	mu sync.Mutex
	// tokens are the service account tokens in the volume, by file path.
	tokens map[string]issuedToken
	// written is the digest of the content last written; a rewrite of the
	// same content means the volume was changed behind knode's back.
	written [sha256.Size]byte
	// verified is the volume's tree stamp when it was last found to hold
	// exactly written (nil: not since the last write). While the volume
	// still has this stamp, unchanged content is not checked again by
	// reading every file back: a stat of each entry shows nothing touched it.
	verified safefs.TreeStamp
}

// maxStampedEntries bounds the entries stamped in a volume; a bigger one
// is checked by reading it back (the atomic writer's full check).
const maxStampedEntries = 4096

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

// New returns the volumes of a node.
func New(cfg Config) *Volumes {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Volumes{cfg: cfg}
}

// Handles reports whether vol is one of the volumes this package writes.
func Handles(vol *v1.Volume) bool {
	_, _, ok := kindOf(vol)
	return ok
}

// kindOf names the volume's directory under the pod's volumes/ as the
// kubelet does, and says whether it lives in memory.
func kindOf(vol *v1.Volume) (kind string, memory, ok bool) {
	switch {
	case vol.ConfigMap != nil:
		return "kubernetes.io~configmap", false, true
	case vol.Secret != nil:
		return "kubernetes.io~secret", true, true
	case vol.Projected != nil:
		return "kubernetes.io~projected", true, true
	case vol.DownwardAPI != nil:
		return "kubernetes.io~downward-api", true, true
	}
	return "", false, false
}

func (ps *PodState) volume(name string) *volumeState {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	st := ps.vols[name]
	if st == nil {
		st = &volumeState{tokens: map[string]issuedToken{}}
		ps.vols[name] = st
	}
	return st
}

// Write brings the volume vol of pod up to date in podDir and returns its
// directory; ps is the pod's state (tokens, last content). Content that has not changed, in a volume that holds exactly
// what knode wrote, is not written again; a volume found in any other state
// is rewritten from scratch. When the content cannot be assembled (an
// object that cannot be read), the volume keeps what it had.
func (v *Volumes) Write(ctx context.Context, ps *PodState, pod *v1.Pod, vol *v1.Volume, podDir string) (string, error) {
	kind, memory, ok := kindOf(vol)
	if !ok {
		return "", fmt.Errorf("volume %q: not a ConfigMap, Secret, projected or downwardAPI volume", vol.Name)
	}
	// The name becomes a path component.
	if errs := validation.IsDNS1123Label(vol.Name); len(errs) > 0 {
		return "", fmt.Errorf("volume %q: invalid name: %s", vol.Name, strings.Join(errs, "; "))
	}
	st := ps.volume(vol.Name)
	st.mu.Lock()
	defer st.mu.Unlock()
	files, err := v.content(ctx, pod, vol, st)
	if err == nil {
		err = atomicwriter.Check(files)
	}
	if err != nil {
		return "", fmt.Errorf("volume %q: %w", vol.Name, err)
	}
	fsGroup := fsGroupOf(pod)
	if fsGroup >= 0 {
		// The kubelet's fsGroup walk adds group read to every file after
		// each write; asking for it up front keeps a written volume as
		// written.
		for p, f := range files {
			f.Mode |= 0o440
			files[p] = f
		}
	}
	dir := filepath.Join(podDir, "volumes", kind, vol.Name)
	// The pod's and its volumes' directories are root's alone (0750, as
	// the kubelet's); the volume's own is searchable by the container's
	// user.
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		return "", fmt.Errorf("volume %q: %w", vol.Name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("volume %q: %w", vol.Name, err)
	}
	d, err := openVolume(dir, memory)
	if err != nil {
		return "", fmt.Errorf("volume %q: %w", vol.Name, err)
	}
	defer d.Close()
	digest := contentDigest(files)
	if digest == st.written && st.verified != nil {
		if now, err := d.TreeStamp(maxStampedEntries); err == nil && now.Equal(st.verified) {
			return dir, nil
		}
	}
	// The volume is checked the long way (every file read back); when it
	// was as written and did not change meanwhile, its stamp is kept for
	// the next refreshes.
	st.verified = nil
	v.readBacks.Add(1)
	before, stampErr := d.TreeStamp(maxStampedEntries)
	now := v.cfg.Now()
	wrote, err := atomicwriter.Write(d, files, now)
	if err != nil {
		return "", fmt.Errorf("volume %q: %w", vol.Name, err)
	}
	if err := setFSGroup(d, fsGroup, wrote); err != nil {
		return "", fmt.Errorf("volume %q: %w", vol.Name, err)
	}
	if !wrote && stampErr == nil && before.Settled(now) {
		if after, err := d.TreeStamp(maxStampedEntries); err == nil && after.Equal(before) {
			st.verified = after
		}
	}
	switch {
	case wrote && digest == st.written:
		v.cfg.Log.Warn("volume was not as knode left it (changed from a container or the host); rewritten inside it",
			"pod", pod.Namespace+"/"+pod.Name, "volume", vol.Name, "dir", dir)
	case wrote:
		v.cfg.Log.Debug("volume written", "pod", pod.Namespace+"/"+pod.Name, "volume", vol.Name, "files", len(files))
	}
	st.written = digest
	return dir, nil
}

// fsGroupOf is the pod's fsGroup, or -1.
func fsGroupOf(pod *v1.Pod) int {
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		return int(*sc.FSGroup)
	}
	return -1
}

// setFSGroup gives the volume the pod's fsGroup (gid; -1 for none) after a
// write, as the kubelet's SetVolumeOwnership does for these read-only
// volumes, or when the volume's root shows an earlier walk did not finish.
// The walk never follows a link nor crosses a mount.
func setFSGroup(d *safefs.Dir, gid int, wrote bool) error {
	if gid < 0 {
		return nil
	}
	if !wrote {
		if done, err := d.GroupOwnershipDone(gid, true); err == nil && done {
			return nil
		}
	}
	if err := d.SetGroupOwnership(gid, true); err != nil {
		return fmt.Errorf("set the volume's group to fsGroup %d: %w", gid, err)
	}
	return nil
}

// content assembles the files of a volume with their modes.
func (v *Volumes) content(ctx context.Context, pod *v1.Pod, vol *v1.Volume, st *volumeState) (map[string]atomicwriter.File, error) {
	files := map[string]atomicwriter.File{}
	switch {
	case vol.ConfigMap != nil:
		src := vol.ConfigMap
		mode, err := fileMode(src.DefaultMode, DefaultMode)
		if err != nil {
			return nil, fmt.Errorf("defaultMode: %w", err)
		}
		return files, v.addConfigMap(ctx, pod, files, src.Name, src.Items, src.Optional, mode)
	case vol.Secret != nil:
		src := vol.Secret
		mode, err := fileMode(src.DefaultMode, DefaultMode)
		if err != nil {
			return nil, fmt.Errorf("defaultMode: %w", err)
		}
		return files, v.addSecret(ctx, pod, files, src.SecretName, src.Items, src.Optional, mode)
	case vol.DownwardAPI != nil:
		mode, err := fileMode(vol.DownwardAPI.DefaultMode, DefaultMode)
		if err != nil {
			return nil, fmt.Errorf("defaultMode: %w", err)
		}
		return files, v.addDownwardAPI(pod, files, vol.DownwardAPI.Items, mode)
	case vol.Projected != nil:
		mode, err := fileMode(vol.Projected.DefaultMode, DefaultMode)
		if err != nil {
			return nil, fmt.Errorf("defaultMode: %w", err)
		}
		for i, src := range vol.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				err = v.addConfigMap(ctx, pod, files, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, mode)
			case src.Secret != nil:
				err = v.addSecret(ctx, pod, files, src.Secret.Name, src.Secret.Items, src.Secret.Optional, mode)
			case src.DownwardAPI != nil:
				err = v.addDownwardAPI(pod, files, src.DownwardAPI.Items, mode)
			case src.ServiceAccountToken != nil:
				err = v.addToken(ctx, pod, files, src.ServiceAccountToken, mode, st)
			case src.ClusterTrustBundle != nil:
				err = fmt.Errorf("sources[%d]: clusterTrustBundle projections are not supported by knode", i)
			case src.PodCertificate != nil:
				err = fmt.Errorf("sources[%d]: podCertificate projections are not supported by knode", i)
			default:
				err = fmt.Errorf("sources[%d]: no source set", i)
			}
			if err != nil {
				return nil, err
			}
		}
		return files, nil
	}
	return nil, fmt.Errorf("not a ConfigMap, Secret, projected or downwardAPI volume")
}

// contentDigest identifies a volume's files: names, modes and contents.
func contentDigest(files map[string]atomicwriter.File) [sha256.Size]byte {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(h, "%d:%s:%o:%d:", len(name), name, files[name].Mode, len(files[name].Data))
		h.Write(files[name].Data)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// fileMode checks a mode given by the pod (the API allows 0 to 0777).
func fileMode(mode *int32, def os.FileMode) (os.FileMode, error) {
	if mode == nil {
		return def, nil
	}
	if *mode < 0 || *mode > 0o777 {
		return 0, fmt.Errorf("mode %#o is not between 0 and 0777", *mode)
	}
	return os.FileMode(*mode), nil
}

func (v *Volumes) objects(what string) (Objects, error) {
	if v.cfg.Objects == nil {
		return nil, fmt.Errorf("%s needs the API server (cluster mode)", what)
	}
	return v.cfg.Objects, nil
}

func (v *Volumes) addConfigMap(ctx context.Context, pod *v1.Pod, files map[string]atomicwriter.File, name string, items []v1.KeyToPath, optional *bool, mode os.FileMode) error {
	what := "configmap " + name
	objs, err := v.objects(what)
	if err != nil {
		return err
	}
	data, err := objs.ConfigMap(ctx, pod.Namespace, name)
	return addItems(files, data, err, items, optional, mode, what)
}

func (v *Volumes) addSecret(ctx context.Context, pod *v1.Pod, files map[string]atomicwriter.File, name string, items []v1.KeyToPath, optional *bool, mode os.FileMode) error {
	what := "secret " + name
	objs, err := v.objects(what)
	if err != nil {
		return err
	}
	data, err := objs.Secret(ctx, pod.Namespace, name)
	return addItems(files, data, err, items, optional, mode, what)
}

// addItems adds an object's keys: all of them under their own names, or
// the listed items under their paths with their own modes. An optional
// object that cannot be read, or an optional item missing, adds nothing.
func addItems(files map[string]atomicwriter.File, data map[string][]byte, readErr error, items []v1.KeyToPath, optional *bool, mode os.FileMode, what string) error {
	opt := optional != nil && *optional
	if readErr != nil {
		if opt {
			return nil
		}
		return fmt.Errorf("%s: %w", what, readErr)
	}
	if len(items) == 0 {
		for _, k := range slices.Sorted(maps.Keys(data)) {
			files[k] = atomicwriter.File{Data: data[k], Mode: mode}
		}
		return nil
	}
	for _, it := range items {
		val, ok := data[it.Key]
		if !ok {
			if opt {
				continue
			}
			return fmt.Errorf("%s has no key %q", what, it.Key)
		}
		m, err := fileMode(it.Mode, mode)
		if err != nil {
			return fmt.Errorf("%s: item %q: %w", what, it.Path, err)
		}
		files[it.Path] = atomicwriter.File{Data: val, Mode: m}
	}
	return nil
}

func (v *Volumes) addToken(ctx context.Context, pod *v1.Pod, files map[string]atomicwriter.File, src *v1.ServiceAccountTokenProjection, mode os.FileMode, st *volumeState) error {
	objs, err := v.objects("a service account token")
	if err != nil {
		return err
	}
	exp := int64(3600)
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	issued, ok := st.tokens[src.Path]
	if now := v.cfg.Now(); !ok || !now.Before(issued.renewAt) {
		tok, err := objs.ServiceAccountToken(ctx, pod, src.Audience, exp)
		if err != nil {
			return fmt.Errorf("service account token: %w", err)
		}
		issued = issuedToken{token: tok, renewAt: tokenRenewal(now, exp)}
		st.tokens[src.Path] = issued
	}
	files[src.Path] = atomicwriter.File{Data: []byte(issued.token), Mode: mode}
	return nil
}

// addDownwardAPI adds the files of a downwardAPI volume or projection. The
// fields are those the API allows in volumes: the pod's name, namespace,
// UID, labels and annotations (whole, or one key), and a container's
// resources.
func (v *Volumes) addDownwardAPI(pod *v1.Pod, files map[string]atomicwriter.File, items []v1.DownwardAPIVolumeFile, mode os.FileMode) error {
	for _, it := range items {
		m, err := fileMode(it.Mode, mode)
		if err != nil {
			return fmt.Errorf("downwardAPI item %q: %w", it.Path, err)
		}
		var val string
		switch {
		case it.FieldRef != nil && it.ResourceFieldRef != nil:
			return fmt.Errorf("downwardAPI item %q: fieldRef and resourceFieldRef are exclusive", it.Path)
		case it.FieldRef != nil:
			val, err = v.field(pod, it.FieldRef)
		case it.ResourceFieldRef != nil:
			if it.ResourceFieldRef.ContainerName == "" {
				return fmt.Errorf("downwardAPI item %q: resourceFieldRef needs containerName in a volume", it.Path)
			}
			if v.cfg.ResourceField == nil {
				return fmt.Errorf("downwardAPI item %q: resourceFieldRef is not available", it.Path)
			}
			val, err = v.cfg.ResourceField(pod, it.ResourceFieldRef)
		default:
			return fmt.Errorf("downwardAPI item %q: needs fieldRef or resourceFieldRef", it.Path)
		}
		if err != nil {
			return fmt.Errorf("downwardAPI item %q: %w", it.Path, err)
		}
		files[it.Path] = atomicwriter.File{Data: []byte(val), Mode: m}
	}
	return nil
}

// field resolves a fieldRef allowed in a volume.
func (v *Volumes) field(pod *v1.Pod, ref *v1.ObjectFieldSelector) (string, error) {
	if ref.APIVersion != "" && ref.APIVersion != "v1" {
		return "", fmt.Errorf("fieldRef apiVersion %q is not supported (v1)", ref.APIVersion)
	}
	p := ref.FieldPath
	switch {
	case p == "metadata.labels":
		return crispec.FormatMap(pod.Labels), nil
	case p == "metadata.annotations":
		return crispec.FormatMap(pod.Annotations), nil
	case p == "metadata.name", p == "metadata.namespace", p == "metadata.uid",
		strings.HasPrefix(p, "metadata.labels['"), strings.HasPrefix(p, "metadata.annotations['"):
		if v.cfg.PodField == nil {
			return "", fmt.Errorf("fieldRef %q is not available", p)
		}
		return v.cfg.PodField(pod, p)
	}
	return "", fmt.Errorf("fieldRef %q is not supported in a downwardAPI volume (metadata.name, metadata.namespace, metadata.uid, metadata.labels, metadata.annotations)", p)
}
