package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"knode.io/knode/internal/client"
)

// Receiver pulls archives from other nodes and writes the static pods that
// resume them: the destination side of a migration.
type Receiver struct {
	RestoreDir  string
	ManifestDir string
	NodeName    string
	// Peer holds this node's credentials for other nodes' APIs; nil when
	// none are configured (--peer-client-certificate and friends).
	Peer *client.Options
}

// ReceiveRequest names an archive on another node and the pod to run here.
type ReceiveRequest struct {
	// Source is https://<node>:10250/checkpoints/<archive>.
	Source    string `json:"source"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// ReceiveResult says what was made, so a failed migration can be undone.
type ReceiveResult struct {
	Archive   string `json:"archive"`
	Manifest  string `json:"manifest"`
	Namespace string `json:"namespace"`
	// Pod is the name knode gives the static pod (<name>-<node>).
	Pod    string `json:"pod"`
	SHA256 string `json:"sha256"`
}

// ErrBadReceive is a request that cannot be served as asked.
var ErrBadReceive = errors.New("bad restore request")

// Receive downloads the archive (digest verified) and writes the manifest.
// On failure nothing it made remains.
func (r *Receiver) Receive(ctx context.Context, req ReceiveRequest) (*ReceiveResult, error) {
	if r.ManifestDir == "" {
		return nil, fmt.Errorf("%w: this node has no --pod-manifest-path to run a restored pod from", ErrBadReceive)
	}
	if r.Peer == nil {
		return nil, fmt.Errorf("%w: this node has no credentials for other nodes (set --peer-client-certificate, --peer-client-key, --peer-certificate-authority)", ErrBadReceive)
	}
	u, err := url.Parse(req.Source)
	if err != nil || u.Scheme != "https" || u.Host == "" || !strings.HasPrefix(u.Path, "/checkpoints/") {
		return nil, fmt.Errorf("%w: source must be https://<node>:<port>/checkpoints/<archive>", ErrBadReceive)
	}
	name := path.Base(u.Path)
	if !ValidArchiveName(name) {
		return nil, fmt.Errorf("%w: %q is not a checkpoint archive name", ErrBadReceive, name)
	}
	if msgs := validation.IsDNS1123Subdomain(req.Name); len(msgs) > 0 {
		return nil, fmt.Errorf("%w: pod name %q: %s", ErrBadReceive, req.Name, strings.Join(msgs, "; "))
	}
	opts := *r.Peer
	opts.Server = u.Scheme + "://" + u.Host
	c, err := client.New(opts)
	if err != nil {
		return nil, fmt.Errorf("peer client: %w", err)
	}
	if err := os.MkdirAll(r.RestoreDir, 0o700); err != nil {
		return nil, err
	}
	archive, sum, err := c.Download(ctx, "/checkpoints/"+url.PathEscape(name)+"/content", r.RestoreDir, name, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", req.Source, err)
	}
	RecordDigest(archive, sum)
	d, err := ReadDetails(archive)
	if err != nil {
		os.Remove(archive)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	manifest, err := RestoreManifest(d, archive, req.Name, req.Namespace)
	if err != nil {
		os.Remove(archive)
		return nil, err
	}
	target := filepath.Join(r.ManifestDir, "restored-"+req.Name+".json")
	if _, err := os.Stat(target); err == nil {
		os.Remove(archive)
		return nil, fmt.Errorf("%w: %s already exists", ErrBadReceive, target)
	}
	tmp := filepath.Join(r.ManifestDir, ".tmp-restored-"+req.Name+".json")
	if err := os.WriteFile(tmp, manifest, 0o600); err != nil {
		os.Remove(archive)
		return nil, err
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		os.Remove(archive)
		return nil, err
	}
	ns := req.Namespace
	if ns == "" {
		ns = firstNonEmpty(d.PodNamespace, "default")
	}
	return &ReceiveResult{Archive: archive, Manifest: target, Namespace: ns, Pod: req.Name + "-" + r.NodeName, SHA256: sum}, nil
}

// Undo removes what Receive made for pod name (the manifest, which stops
// the pod, and the archive it restored from).
func (r *Receiver) Undo(name string) error {
	if len(validation.IsDNS1123Subdomain(name)) > 0 {
		return fmt.Errorf("%w: pod name %q", ErrBadReceive, name)
	}
	target := filepath.Join(r.ManifestDir, "restored-"+name+".json")
	data, err := os.ReadFile(target)
	if err != nil {
		return ErrArchiveNotFound
	}
	if err := os.Remove(target); err != nil {
		return err
	}
	// The archive named in the manifest, only if it is in the restore dir.
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, RestoreAnnotationPrefix) {
			continue
		}
		_, val, _ := strings.Cut(line, ": ")
		p := strings.Trim(strings.TrimSpace(val), `",`)
		if filepath.Dir(p) == filepath.Clean(r.RestoreDir) {
			os.Remove(p)
		}
	}
	return nil
}
