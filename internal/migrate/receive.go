// Package migrate is the destination side of a migration: it pulls a
// checkpoint archive from a trusted peer node (POST /restores) and writes
// the static pod manifest that resumes it, and undoes both on request.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"k8s.io/apimachinery/pkg/util/validation"

	"knode.io/knode/internal/apierr"
	"knode.io/knode/internal/checkpoint/format"
	"knode.io/knode/internal/client"
	"knode.io/knode/internal/podsource"
	"knode.io/knode/internal/restore"
)

// Receiver pulls archives from other nodes and writes the static pods that
// resume them: the destination side of a migration. It acts for whoever
// may call POST /restores, so it connects only to trusted peers, bounds
// what it writes and how long it waits, and answers with stable reasons
// (the details go to the log, never to the caller).
type Receiver struct {
	RestoreDir  string
	ManifestDir string
	NodeName    string
	// Peer holds this node's credentials for other nodes' APIs; nil when
	// none are configured (--peer-client-certificate and friends).
	Peer *client.Options
	// Peers are the nodes archives may come from; nil trusts none.
	Peers *Peers
	// AcrossNamespaces lets a request run the pod in another namespace
	// than the archive's (--restore-across-namespaces).
	AcrossNamespaces bool
	// MaxTotalBytes is the checkpoint budget (--checkpoint-max-total-bytes):
	// the received archives and the incoming one must fit in it; 0: none.
	MaxTotalBytes int64
	// MaxParallel bounds receives at once (default 2); more get 503.
	MaxParallel int
	// ConnectTimeout and ReadTimeout bound the connection to the source
	// and every wait for its bytes (defaults 10 s and 60 s).
	ConnectTimeout, ReadTimeout time.Duration
	// FreeBytes tells the free bytes of dir's filesystem; nil: statfs.
	FreeBytes func(dir string) (int64, error)
	Log       *slog.Logger

	once  sync.Once
	slots chan struct{}
	// mu guards reserved: bytes admitted for downloads still running.
	mu       sync.Mutex
	reserved int64
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

// ErrNotFound is an Undo of a pod no Receive made.
var ErrNotFound = apierr.New(apierr.NotFound, "checkpoint archive not found")

// receiveRetryAfter is the Retry-After (seconds) of a receive refused
// because others are running.
const receiveRetryAfter = 10

func (r *Receiver) init() {
	r.once.Do(func() {
		n := r.MaxParallel
		if n < 1 {
			n = 2
		}
		r.slots = make(chan struct{}, n)
		if r.Log == nil {
			r.Log = slog.Default()
		}
		if r.ConnectTimeout <= 0 {
			r.ConnectTimeout = 10 * time.Second
		}
		if r.ReadTimeout <= 0 {
			r.ReadTimeout = time.Minute
		}
		if r.FreeBytes == nil {
			r.FreeBytes = freeBytes
		}
	})
}

// refuse is an answer to the caller: a kind and a stable text.
func refuse(kind apierr.Kind, body string, err error) *apierr.Error {
	return apierr.Wrap(kind, body, err)
}

func bad(msg string, args ...any) *apierr.Error {
	return refuse(apierr.Invalid, fmt.Sprintf("%v: ", ErrBadReceive)+fmt.Sprintf(msg, args...), ErrBadReceive)
}

// Receive downloads the archive (digest verified) and writes the manifest.
// On failure nothing it made remains. Refusals are *apierr.Error: a kind
// and the text to answer.
func (r *Receiver) Receive(ctx context.Context, req ReceiveRequest) (*ReceiveResult, error) {
	r.init()
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	default:
		e := refuse(apierr.Unavailable, fmt.Sprintf("TooManyRestores: %d archives are being received; retry later", cap(r.slots)), nil)
		e.RetryAfter = receiveRetryAfter
		return nil, e
	}
	if r.ManifestDir == "" {
		return nil, bad("this node has no --pod-manifest-path to run a restored pod from")
	}
	if r.Peer == nil {
		return nil, bad("this node has no credentials for other nodes (set --peer-client-certificate, --peer-client-key, --peer-certificate-authority)")
	}
	u, err := url.Parse(req.Source)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		!strings.HasPrefix(u.Path, "/checkpoints/") {
		return nil, bad("source must be https://<node>:<port>/checkpoints/<archive>")
	}
	name := strings.TrimPrefix(u.Path, "/checkpoints/")
	if !format.ValidName(name) {
		return nil, bad("%q is not a checkpoint archive name", name)
	}
	if msgs := validation.IsDNS1123Subdomain(req.Name); len(msgs) > 0 {
		return nil, bad("pod name %q: %s", req.Name, strings.Join(msgs, "; "))
	}
	if req.Namespace != "" {
		if msgs := validation.IsDNS1123Label(req.Namespace); len(msgs) > 0 {
			return nil, bad("namespace %q: %s", req.Namespace, strings.Join(msgs, "; "))
		}
	}
	manifestName := "restored-" + req.Name + ".json"
	if _, err := os.Lstat(filepath.Join(r.ManifestDir, manifestName)); err == nil {
		return nil, bad("%s already exists", filepath.Join(r.ManifestDir, manifestName))
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
	}
	ok, err := r.Peers.Trusted(ctx, host, port)
	if err != nil {
		r.Log.Warn("restore refused: cannot tell whether the source is a trusted peer", "source", u.Host, "err", err)
		e := refuse(apierr.Unavailable, "PeersUnavailable: this node cannot list the cluster's Nodes to check the source "+
			"(see its log: it needs list on nodes, which the Node authorizer alone does not give)", err)
		e.RetryAfter = receiveRetryAfter
		return nil, e
	}
	if !ok {
		r.Log.Warn("restore refused: the source is not a trusted peer", "source", u.Host)
		return nil, refuse(apierr.Forbidden, fmt.Sprintf(
			"UntrustedSource: %s is not a peer this node pulls archives from (--restore-peers, or a Node of the cluster at its kubelet port)", u.Host), nil)
	}
	opts := *r.Peer
	opts.Server = "https://" + u.Host
	opts.Kubeconfig = "" // certificate files only: Fetch bounds their transport
	c, err := client.New(opts)
	if err != nil {
		r.Log.Error("restore: this node's peer credentials do not load", "err", err)
		return nil, refuse(apierr.Internal, "PeerCredentials: this node's peer credentials cannot be used (see its log)", err)
	}
	if err := os.MkdirAll(r.RestoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("create restore directory: %w", err)
	}
	var admitted int64
	var admitErr error
	defer func() { r.release(admitted) }()
	archive, sum, err := c.Fetch(ctx, "/checkpoints/"+url.PathEscape(name)+"/content", r.RestoreDir, name, client.FetchOptions{
		Admit: func(size int64) error {
			if admitErr = r.admit(size); admitErr != nil {
				return admitErr
			}
			admitted = size
			return nil
		},
		ConnectTimeout: r.ConnectTimeout, ReadTimeout: r.ReadTimeout,
	})
	if err != nil {
		r.Log.Warn("restore: fetching the archive failed", "source", req.Source, "err", err)
		if admitErr != nil {
			return nil, refuse(apierr.TooLarge, "ArchiveTooLarge: "+admitErr.Error(), err)
		}
		return nil, fetchRefusal(u.Host, err)
	}
	format.RecordDigest(archive, sum)
	d, err := format.ReadDetails(archive)
	if err != nil {
		os.Remove(archive)
		return nil, refuse(apierr.Unprocessable, fmt.Sprintf("InvalidCheckpoint: %s is not a checkpoint archive", name), err)
	}
	ns := req.Namespace
	if ns == "" {
		ns = d.PodNamespace
	}
	if (ns != d.PodNamespace || ns == "") && !r.AcrossNamespaces {
		os.Remove(archive)
		return nil, refuse(apierr.Forbidden, fmt.Sprintf(
			"CheckpointNotAllowed: the archive was taken in namespace %q and may only be restored there (--restore-across-namespaces allows more)", d.PodNamespace), nil)
	}
	if ns == "" {
		ns = "default"
	}
	manifest, err := RestoreManifest(d, archive, req.Name, ns)
	if err != nil {
		os.Remove(archive)
		return nil, refuse(apierr.Unprocessable, "InvalidCheckpoint: "+err.Error(), err)
	}
	target, err := WriteNewFile(r.ManifestDir, manifestName, manifest)
	if err != nil {
		os.Remove(archive)
		if errors.Is(err, os.ErrExist) {
			return nil, bad("%s already exists", filepath.Join(r.ManifestDir, manifestName))
		}
		return nil, err
	}
	return &ReceiveResult{Archive: archive, Manifest: target, Namespace: ns, Pod: podsource.StaticName(req.Name, r.NodeName), SHA256: sum}, nil
}

// fetchRefusal turns a download failure into a stable answer: what went
// wrong, never the dial, TLS or source's own text.
func fetchRefusal(source string, err error) *apierr.Error {
	switch {
	case errors.Is(err, client.ErrUnreachable):
		return refuse(apierr.Upstream, fmt.Sprintf("SourceUnreachable: %s could not be reached or stopped sending (see this node's log)", source), err)
	case errors.Is(err, client.ErrSourceStatus):
		return refuse(apierr.Upstream, fmt.Sprintf("SourceRefused: %s did not serve the archive (see this node's log)", source), err)
	case errors.Is(err, client.ErrNoSize), errors.Is(err, client.ErrLength), errors.Is(err, client.ErrDigest):
		return refuse(apierr.Upstream, fmt.Sprintf("SourceInvalid: %s sent an archive that does not match what it announced", source), err)
	case errors.Is(err, client.ErrExists):
		return refuse(apierr.Conflict, "ArchiveExists: the archive is already on this node", err)
	}
	return refuse(apierr.Internal, "ReceiveFailed: the archive could not be stored (see this node's log)", err)
}

// admit reserves size bytes if they fit in the restore directory's free
// space and in the budget, counting downloads still running.
func (r *Receiver) admit(size int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	free, err := r.FreeBytes(r.RestoreDir)
	if err != nil {
		return fmt.Errorf("cannot read the free space of %s", r.RestoreDir)
	}
	if size+r.reserved > free {
		return fmt.Errorf("the archive is %d bytes; the restore directory's filesystem has %d bytes free", size, free-r.reserved)
	}
	if r.MaxTotalBytes > 0 {
		used := dirBytes(r.RestoreDir)
		if used+r.reserved+size > r.MaxTotalBytes {
			return fmt.Errorf("the archive is %d bytes; received archives use %d of the %d-byte checkpoint budget (--checkpoint-max-total-bytes)",
				size, used+r.reserved, r.MaxTotalBytes)
		}
	}
	r.reserved += size
	return nil
}

func (r *Receiver) release(size int64) {
	r.mu.Lock()
	r.reserved -= size
	r.mu.Unlock()
}

// dirBytes is the size of the regular files in dir (not in subdirectories).
func dirBytes(dir string) int64 {
	entries, _ := os.ReadDir(dir)
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil {
			total += fi.Size()
		}
	}
	return total
}

func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// WriteNewFile writes data to dir/name, which must not exist, beneath dir
// (os.Root, O_EXCL temporary, then a link that fails if name appeared):
// never through a link, never replacing a file.
func WriteNewFile(dir, name string, data []byte) (string, error) {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return "", fmt.Errorf("%q is not a file name", name)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", dir, err)
	}
	defer root.Close()
	tmp := ".tmp-" + name
	f, err := root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("create %s in %s: %w", tmp, dir, err)
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = root.Link(tmp, name)
	}
	root.Remove(tmp)
	if werr != nil {
		return "", werr
	}
	return filepath.Join(dir, name), nil
}

// Undo removes what Receive made for pod name (the manifest, which stops
// the pod, and the archive it restored from).
func (r *Receiver) Undo(name string) error {
	if len(validation.IsDNS1123Subdomain(name)) > 0 {
		return bad("pod name %q is not a DNS-1123 subdomain", name)
	}
	target := filepath.Join(r.ManifestDir, "restored-"+name+".json")
	data, err := os.ReadFile(target)
	if err != nil {
		return ErrNotFound
	}
	if err := os.Remove(target); err != nil {
		return err
	}
	// The archive named in the manifest, only if it is in the restore dir.
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, restore.AnnotationPrefix) {
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
