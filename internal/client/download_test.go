package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDownloadDoesNotWriteThroughLinks: a link planted where the partial
// file goes is refused, and the file it points at is untouched.
func TestDownloadDoesNotWriteThroughLinks(t *testing.T) {
	body := []byte("archive bytes")
	sum := sha256.Sum256(body)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Checkpoint-Sha256", hex.EncodeToString(sum[:]))
		w.Write(body)
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	c := &Client{base: base, http: srv.Client()}
	dir, outside := t.TempDir(), t.TempDir()
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	if err := os.Symlink(victim, filepath.Join(dir, ".part-a.tar")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Download(context.Background(), "/x", dir, "a.tar", nil); err == nil {
		t.Fatal("downloaded through a planted link")
	}
	if data, _ := os.ReadFile(victim); string(data) != "keep" {
		t.Fatalf("the file outside was changed: %q", data)
	}
	if _, _, err := c.Download(context.Background(), "/x", dir, "../b.tar", nil); err == nil {
		t.Fatal("a name with a path was accepted")
	}
	got, _, err := c.Download(context.Background(), "/x", dir, "b.tar", nil)
	if err != nil || got != filepath.Join(dir, "b.tar") {
		t.Fatalf("plain download: %q %v", got, err)
	}
}

// TestFetchBoundsTheWholeTransfer: a source that trickles a byte just before
// each read deadline is cut off once the body is slower than MinRate, and
// leaves no file behind.
func TestFetchBoundsTheWholeTransfer(t *testing.T) {
	const size = 64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "64")
		for i := 0; i < size; i++ {
			if _, err := w.Write([]byte{'x'}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	c := &Client{base: base, http: srv.Client()}
	dir := t.TempDir()
	// Each byte comes well within ReadTimeout, but 64 bytes take 6.4 s
	// where ReadTimeout + 64 B / (1 MiB/s) allows 1 s.
	_, _, err := c.Fetch(context.Background(), "/x", dir, "a.tar", FetchOptions{
		Admit:       func(int64) error { return nil },
		ReadTimeout: time.Second,
	})
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, errTooSlow) {
		t.Fatalf("Fetch from a trickling source = %v; want it cut off as too slow", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}
