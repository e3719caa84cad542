package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Download fetches path into dir/name: it resumes a partial download
// (Range), verifies the server's SHA-256 of the whole file, and renames the
// file into place (mode 0600) only when it matches. A mismatch leaves
// nothing behind. progress, if set, is called with bytes so far and total.
// Every file is opened beneath dir (os.Root), so a link planted in dir
// cannot send the bytes elsewhere. It is for an operator's own command
// line; a node fetching for a remote caller uses Fetch.
func (c *Client) Download(ctx context.Context, path, dir, name string, progress func(done, total int64)) (string, string, error) {
	if !plainName(name) {
		return "", "", fmt.Errorf("%q is not a plain file name", name)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", "", fmt.Errorf("open %s: %w", dir, err)
	}
	defer root.Close()
	final := filepath.Join(dir, name)
	if _, err := root.Lstat(name); err == nil {
		return "", "", fmt.Errorf("%s already exists; not overwriting it", final)
	}
	partName := ".part-" + name
	part := filepath.Join(dir, partName)
	if fi, err := root.Lstat(partName); err == nil && !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("%s is not a regular file; not writing through it", part)
	}
	f, err := root.OpenFile(partName, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("open %s: %w", part, err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path, nil), nil)
	if err != nil {
		return "", "", err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	// The digest may come after the body: the server need not read the archive twice.
	req.Header.Set("X-Checkpoint-Digest", "trailer")
	resp, err := c.http.Do(req)
	if err != nil {
		if have == 0 {
			root.Remove(partName)
		}
		return "", "", fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		// A full answer: start over.
		if err := f.Truncate(0); err != nil {
			return "", "", err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", "", err
		}
		have = 0
	case http.StatusPartialContent:
	case http.StatusRequestedRangeNotSatisfiable:
		// The partial file is as long as the archive (or longer): verify below.
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if have == 0 {
			root.Remove(partName) // nothing to resume: leave nothing behind
		}
		return "", "", fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	// The digest comes as a header, or as a trailer after the body.
	want := resp.Header.Get("X-Checkpoint-Sha256")
	// One pass: the bytes already there, then the rest as it arrives.
	h := sha256.New()
	if have > 0 {
		if err := hashPrefix(h, root, partName, have); err != nil {
			return "", "", err
		}
	}
	total := have + resp.ContentLength
	if resp.ContentLength < 0 {
		total, _ = strconv.ParseInt(resp.Header.Get("X-Checkpoint-Size"), 10, 64)
	}
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		total = have
	} else {
		w := io.MultiWriter(f, h)
		if progress != nil {
			w = &progressWriter{w: w, done: have, total: total, report: progress}
		}
		if _, err := io.Copy(w, resp.Body); err != nil {
			return "", "", fmt.Errorf("download %s (kept %s to resume): %w", path, part, err)
		}
	}
	if err := f.Sync(); err != nil {
		return "", "", err
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want == "" {
		want = resp.Trailer.Get("X-Checkpoint-Sha256")
	}
	if want == "" {
		root.Remove(partName)
		return "", "", fmt.Errorf("GET %s: the server sent no archive digest", path)
	}
	if got != want {
		root.Remove(partName)
		return "", "", fmt.Errorf("downloaded archive does not match its digest (got sha256 %s, want %s); removed it", got, want)
	}
	if err := root.Link(partName, name); err != nil {
		return "", "", fmt.Errorf("place %s: %w", final, err)
	}
	root.Remove(partName)
	return final, got, nil
}

// Errors of Fetch, for callers that answer someone else: they name what
// went wrong without the underlying dial, TLS or server text (which
// Fetch's error still carries, for logs).
var (
	// ErrUnreachable: no connection, TLS failure, or a timeout.
	ErrUnreachable = errors.New("the source could not be reached")
	// ErrSourceStatus: the source answered with an error status.
	ErrSourceStatus = errors.New("the source refused the download")
	// ErrNoSize: the source did not announce the archive's size.
	ErrNoSize = errors.New("the source did not announce the archive's size")
	// ErrNotAdmitted: the announced size was refused (no room, over budget).
	ErrNotAdmitted = errors.New("the archive does not fit")
	// ErrLength: the body was longer or shorter than announced.
	ErrLength = errors.New("the source sent a different length than it announced")
	// ErrDigest: no digest, or one that does not match.
	ErrDigest = errors.New("the archive does not match its digest")
	// ErrExists: the archive is already there (or being fetched).
	ErrExists = errors.New("the archive is already here")
)

// FetchOptions bound a download made for a remote caller.
type FetchOptions struct {
	// Admit is told the announced size before a byte is written; an error
	// (wrapped in ErrNotAdmitted) refuses the download. Required.
	Admit func(size int64) error
	// ConnectTimeout bounds the TCP connection and the TLS handshake;
	// ReadTimeout the wait for the answer's headers and for each read of
	// the body.
	ConnectTimeout, ReadTimeout time.Duration
	// MinRate (bytes per second, default 1 MiB/s) bounds the whole body:
	// it must arrive within ReadTimeout + size/MinRate, so a source that
	// sends a byte just before each read deadline cannot hold one of the
	// node's few receive slots for ever.
	MinRate int64
}

// Fetch downloads path into dir/name for a node acting on someone else's
// request, trusting the source as little as it can: the announced size is
// admitted before anything is written, a longer body is cut and refused,
// the bytes go to an exclusive temporary file (O_EXCL) beneath dir that is
// removed on any failure, redirects are not followed, and connecting and
// reading have deadlines. It never resumes: a partial file is not kept.
func (c *Client) Fetch(ctx context.Context, path, dir, name string, o FetchOptions) (string, string, error) {
	if !plainName(name) {
		return "", "", fmt.Errorf("%q is not a plain file name", name)
	}
	if o.Admit == nil {
		return "", "", errors.New("fetch: no size admission")
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = time.Minute
	}
	if o.MinRate <= 0 {
		o.MinRate = 1 << 20
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", "", fmt.Errorf("open %s: %w", dir, err)
	}
	defer root.Close()
	if _, err := root.Lstat(name); err == nil {
		return "", "", fmt.Errorf("%w: %s", ErrExists, filepath.Join(dir, name))
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path, nil), nil)
	if err != nil {
		return "", "", err
	}
	req.Header.Set("X-Checkpoint-Digest", "trailer")
	resp, err := c.bounded(o).Do(req)
	if err != nil {
		return "", "", fmt.Errorf("%w: GET %s: %w", ErrUnreachable, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", "", fmt.Errorf("%w: GET %s: %s: %q", ErrSourceStatus, path, resp.Status, body)
	}
	size := resp.ContentLength
	if size < 0 {
		// Streamed with the digest as a trailer: the size comes as a header.
		if size, err = strconv.ParseInt(resp.Header.Get("X-Checkpoint-Size"), 10, 64); err != nil || size < 0 {
			return "", "", fmt.Errorf("%w: GET %s", ErrNoSize, path)
		}
	}
	if err := o.Admit(size); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrNotAdmitted, err)
	}

	tmpName, f, err := createExclusive(root, name)
	if err != nil {
		return "", "", err
	}
	placed := false
	defer func() {
		f.Close()
		if !placed {
			root.Remove(tmpName)
		}
	}()
	// Each read must bring bytes within ReadTimeout, and the whole body
	// must come at MinRate, or the request ends.
	idle := time.AfterFunc(o.ReadTimeout, func() { cancel(errReadTimeout) })
	defer idle.Stop()
	whole := o.ReadTimeout + time.Duration(size/o.MinRate)*time.Second
	slow := time.AfterFunc(whole, func() { cancel(fmt.Errorf("%w (%d bytes in %s)", errTooSlow, size, whole)) })
	defer slow.Stop()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), &idleReader{r: io.LimitReader(resp.Body, size+1), timer: idle, d: o.ReadTimeout})
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		}
		return "", "", fmt.Errorf("%w: GET %s: %w", ErrUnreachable, path, err)
	}
	if n != size {
		return "", "", fmt.Errorf("%w: GET %s: announced %d bytes, got %d or more", ErrLength, path, size, n)
	}
	want := resp.Header.Get("X-Checkpoint-Sha256")
	if want == "" {
		want = resp.Trailer.Get("X-Checkpoint-Sha256")
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want == "" || got != want {
		return "", "", fmt.Errorf("%w: GET %s: got sha256 %s, want %q", ErrDigest, path, got, want)
	}
	if err := f.Sync(); err != nil {
		return "", "", err
	}
	if err := root.Link(tmpName, name); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", "", fmt.Errorf("%w: %s", ErrExists, filepath.Join(dir, name))
		}
		return "", "", fmt.Errorf("place %s: %w", filepath.Join(dir, name), err)
	}
	root.Remove(tmpName)
	placed = true
	return filepath.Join(dir, name), got, nil
}

var (
	errReadTimeout = errors.New("no data from the source within the read timeout")
	errTooSlow     = errors.New("the source sends slower than the minimum rate")
)

// bounded is the client with connect and header deadlines and without
// redirects (a source must not send this node elsewhere).
func (c *Client) bounded(o FetchOptions) *http.Client {
	hc := *c.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if t, ok := hc.Transport.(*http.Transport); ok {
		t = t.Clone()
		t.DialContext = (&net.Dialer{Timeout: o.ConnectTimeout}).DialContext
		t.TLSHandshakeTimeout = o.ConnectTimeout
		t.ResponseHeaderTimeout = o.ReadTimeout
		t.Proxy = nil
		hc.Transport = t
	}
	return &hc
}

// createExclusive makes a new hidden file for name beneath root: O_EXCL,
// so it is never a file (or link) someone else put there.
func createExclusive(root *os.Root, name string) (string, *os.File, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	tmp := ".part-" + hex.EncodeToString(b[:]) + "-" + name
	f, err := root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("create temporary file: %w", err)
	}
	return tmp, f, nil
}

// idleReader pushes the read deadline back each time bytes arrive.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (i *idleReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if n > 0 {
		i.timer.Reset(i.d)
	}
	return n, err
}

// plainName is one path component that names a file.
func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && filepath.Base(name) == name && !containsNUL(name)
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

func hashPrefix(h io.Writer, root *os.Root, name string, n int64) error {
	f, err := root.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(h, f, n)
	return err
}

type progressWriter struct {
	w           io.Writer
	done, total int64
	report      func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	p.report(p.done, p.total)
	return n, err
}
