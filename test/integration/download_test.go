package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"knode.io/knode/test/fakecri"
)

func TestArchiveDownload(t *testing.T) {
	t.Parallel()
	n := startFakeWithPod(t)
	n.fake.SetBehavior(fakecri.Behavior{Size: 300 << 10})
	code, _, body := n.raw("POST", n.checkpointPath("default", "web", "app", ""))
	if code != 200 {
		t.Fatalf("checkpoint: %d %s", code, body)
	}
	var answer struct{ Items []string }
	json.Unmarshal([]byte(body), &answer)
	src := answer.Items[0]
	name := filepath.Base(src)
	original, _ := os.ReadFile(src)
	c := n.api()
	path := "/checkpoints/" + name + "/content"
	dest := func() string {
		d := t.TempDir()
		return d
	}
	leftovers := func(dir string) []string {
		entries, _ := os.ReadDir(dir)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}

	// A plain client (curl, say) gets Content-Length and the Digest header.
	hc := n.httpClient()
	resp, err := hc.Get(n.url() + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength != int64(len(original)) || !strings.HasPrefix(resp.Header.Get("Digest"), "sha-256=") || len(resp.Header.Get("X-Checkpoint-Sha256")) != 64 {
		t.Fatalf("content: length %d digest %q", resp.ContentLength, resp.Header.Get("Digest"))
	}

	// Whole file: digest verified, 0600.
	d1 := dest()
	got, sum, err := c.Download(context.Background(), path, d1, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(got)
	fi, _ := os.Stat(got)
	if string(data) != string(original) || len(sum) != 64 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("download differs or mode %v", fi.Mode())
	}

	// Resume: half of the file already there; the rest comes by Range.
	d2 := dest()
	os.WriteFile(filepath.Join(d2, ".part-"+name), original[:len(original)/2], 0o600)
	before := metricValue(t, c, "kubelet_http_requests_total", map[string]string{"path": "checkpoints"})
	if _, _, err := c.Download(context.Background(), path, d2, name, nil); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(d2, name)); string(data) != string(original) {
		t.Fatal("resumed download differs")
	}
	if after := metricValue(t, c, "kubelet_http_requests_total", map[string]string{"path": "checkpoints"}); after != before+1 {
		t.Fatalf("resume took %v requests", after-before)
	}

	// A corrupt partial file: the digest does not match, nothing is left.
	d3 := dest()
	os.WriteFile(filepath.Join(d3, ".part-"+name), make([]byte, len(original)/2), 0o600)
	if _, _, err := c.Download(context.Background(), path, d3, name, nil); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("corrupt download: %v", err)
	}
	if l := leftovers(d3); len(l) != 0 {
		t.Fatalf("a failed download left %v", l)
	}

	// A missing archive: a clear 404, nothing written.
	d4 := dest()
	missing := "checkpoint-x_default-app-2026-01-01T00:00:00Z.tar"
	if _, _, err := c.Download(context.Background(), "/checkpoints/"+missing+"/content", d4, missing, nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing archive: %v", err)
	}
	if l := leftovers(d4); len(l) != 0 {
		t.Fatalf("a missing archive left %v", l)
	}
}
