package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

// Download fetches path into dir/name: it resumes a partial download
// (Range), verifies the server's SHA-256 of the whole file, and renames the
// file into place (mode 0600) only when it matches. A mismatch leaves
// nothing behind. progress, if set, is called with bytes so far and total.
func (c *Client) Download(ctx context.Context, path, dir, name string, progress func(done, total int64)) (string, string, error) {
	final := filepath.Join(dir, name)
	if _, err := os.Stat(final); err == nil {
		return "", "", fmt.Errorf("%s already exists; not overwriting it", final)
	}
	part := filepath.Join(dir, ".part-"+name)
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o600)
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
			os.Remove(part)
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
			os.Remove(part) // nothing to resume: leave nothing behind
		}
		return "", "", fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	// The digest comes as a header, or as a trailer after the body.
	want := resp.Header.Get("X-Checkpoint-Sha256")
	// One pass: the bytes already there, then the rest as it arrives.
	h := sha256.New()
	if have > 0 {
		if err := hashPrefix(h, part, have); err != nil {
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
		os.Remove(part)
		return "", "", fmt.Errorf("GET %s: the server sent no archive digest", path)
	}
	if got != want {
		os.Remove(part)
		return "", "", fmt.Errorf("downloaded archive does not match its digest (got sha256 %s, want %s); removed it", got, want)
	}
	if err := os.Link(part, final); err != nil {
		return "", "", fmt.Errorf("place %s: %w", final, err)
	}
	os.Remove(part)
	return final, got, nil
}

func hashPrefix(h io.Writer, path string, n int64) error {
	f, err := os.Open(path)
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
