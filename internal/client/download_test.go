package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
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
