package integration

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"knode.io/knode/test/fakecri"
)

// raw sends a request with knode's local admin certificate and returns the
// status, headers and body exactly as served.
func (n *node) raw(method, path string) (int, http.Header, string) {
	n.t.Helper()
	c := n.httpClient()
	req, _ := http.NewRequest(method, n.url()+path, nil)
	var resp *http.Response
	var err error
	n.eventually(30*time.Second, "knode to serve", func() bool {
		resp, err = c.Do(req)
		return err == nil
	})
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// httpClient presents knode's local admin certificate and trusts its serving certificate.
func (n *node) httpClient() *http.Client {
	n.t.Helper()
	pki := filepath.Join(n.rootDir(), "pki")
	var cert tls.Certificate
	n.eventually(30*time.Second, "local credentials and the API listening", func() bool {
		var err error
		if cert, err = tls.LoadX509KeyPair(filepath.Join(pki, "admin.crt"), filepath.Join(pki, "admin.key")); err != nil {
			return false
		}
		return n.listening()
	})
	ca, err := os.ReadFile(filepath.Join(pki, "kubelet.crt"))
	if err != nil {
		n.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
}

func fakePodManifest(name string, containers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  containers:\n", name)
	for _, c := range containers {
		fmt.Fprintf(&b, "  - {name: %s, image: fake/image:1}\n", c)
	}
	return b.String()
}

// startFakeWithPod runs knode on the fake runtime with one running pod.
func startFakeWithPod(t *testing.T, extra ...string) *node {
	n := newFakeNode(t)
	n.writeManifest("web.yaml", fakePodManifest("web", "app", "side"))
	n.startKnode(append([]string{"--runtime-request-timeout", "30s"}, extra...)...)
	n.eventually(30*time.Second, "web running", func() bool {
		pod, ok := n.podStatus("default", "web")
		return ok && pod == "Running"
	})
	return n
}

// podStatus reads a pod's phase from /pods.
func (n *node) podStatus(ns, name string) (string, bool) {
	code, _, body := n.raw("GET", "/pods")
	if code != 200 {
		return "", false
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name, Namespace string }
			Status   struct{ Phase string }
		}
	}
	_ = json.Unmarshal([]byte(body), &list)
	for _, p := range list.Items {
		if p.Metadata.Namespace == ns && p.Metadata.Name == n.podName(name) {
			return p.Status.Phase, true
		}
	}
	return "", false
}

func (n *node) checkpointPath(ns, pod, container, query string) string {
	p := "/checkpoint/" + ns + "/" + n.podName(pod) + "/" + container
	if query != "" {
		p += "?" + query
	}
	return p
}

func (n *node) checkpointsDir() string { return filepath.Join(n.rootDir(), "checkpoints") }

func (n *node) dirEntries(dir string) []string {
	n.t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		n.t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestCheckpointContract(t *testing.T) {
	t.Parallel()
	n := startFakeWithPod(t)
	c := n.api()
	ops := func() (float64, float64) {
		return metricValue(t, c, "kubelet_runtime_operations_total", map[string]string{"operation_type": "checkpoint_container"}),
			metricValue(t, c, "kubelet_runtime_operations_errors_total", map[string]string{"operation_type": "checkpoint_container"})
	}
	httpCount := func() float64 {
		return metricValue(t, c, "kubelet_http_requests_total", map[string]string{"path": "checkpoint", "method": "post"})
	}

	// Directory created at start, root-only.
	fi, err := os.Stat(n.checkpointsDir())
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("checkpoints dir: %v %v, want 0700", fi.Mode(), err)
	}

	// Lookups, in the kubelet's order and with its exact bodies.
	for _, tt := range []struct {
		path, body string
		code       int
	}{
		{"/checkpoint/default/nope/app", "pod does not exist", 404},
		{"/checkpoint/default/nope/app?timeout=abc", "pod does not exist", 404},
		{n.checkpointPath("default", "web", "nope", "timeout=abc"), "container nope does not exist", 404},
		{n.checkpointPath("default", "web", "app", "timeout=abc"), "cannot parse value of timeout parameter", 404},
		{n.checkpointPath("default", "web", "app", "timeout=10&timeout=x"), "cannot parse value of timeout parameter", 404},
		{"/checkpoint/a%2Fb/web/app", "pod does not exist", 404},
		{n.checkpointPath("default", "web", "app", "timeout=-1"), "checkpointing of default/" + n.podName("web") + "/app failed (CheckpointContainer requires the timeout value to be > 0)", 500},
	} {
		code, _, body := n.raw("POST", tt.path)
		if code != tt.code || strings.TrimSpace(body) != tt.body {
			t.Errorf("POST %s: %d %q, want %d %q", tt.path, code, body, tt.code, tt.body)
		}
	}
	if len(n.fake.Calls()) != 0 {
		t.Fatalf("rejected requests reached the runtime: %d calls", len(n.fake.Calls()))
	}
	if code, _, body := n.raw("GET", n.checkpointPath("default", "web", "app", "")); code != 405 || strings.TrimSpace(body) != "405: Method Not Allowed" {
		t.Fatalf("GET: %d %q, want the kubelet's 405", code, body)
	}

	// Success: exact JSON, the kubelet's name, 0600 although the runtime wrote 0644.
	opsBefore, errsBefore := ops()
	httpBefore := httpCount()
	code, hdr, body := n.raw("POST", n.checkpointPath("default", "web", "app", ""))
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("checkpoint: %d %s %q", code, hdr.Get("Content-Type"), body)
	}
	var answer struct{ Items []string }
	if err := json.Unmarshal([]byte(body), &answer); err != nil || len(answer.Items) != 1 {
		t.Fatalf("answer %q: %v", body, err)
	}
	name := filepath.Base(answer.Items[0])
	want := regexp.MustCompile(`^checkpoint-` + regexp.QuoteMeta(n.podName("web")) + `_default-app-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.tar$`)
	if filepath.Dir(answer.Items[0]) != n.checkpointsDir() || !want.MatchString(name) {
		t.Fatalf("archive path %q does not follow the kubelet's naming", answer.Items[0])
	}
	fi, err = os.Stat(answer.Items[0])
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive mode %v (%v), want 0600", fi.Mode(), err)
	}
	opsAfter, errsAfter := ops()
	if opsAfter != opsBefore+1 || errsAfter != errsBefore {
		t.Fatalf("operations %v→%v errors %v→%v, want +1 and +0", opsBefore, opsAfter, errsBefore, errsAfter)
	}
	if got := httpCount(); got != httpBefore+1 {
		t.Fatalf("http checkpoint requests %v→%v, want +1", httpBefore, got)
	}

	// The CRI deadline follows the timeout as the kubelet maps it.
	for _, tt := range []struct {
		query string
		want  time.Duration
	}{
		{"", 30 * time.Second},
		{"timeout=0", 30 * time.Second},
		{"timeout=5", 30 * time.Second},
		{"timeout=100", 100 * time.Second},
		{"timeout=1&timeout=90", 90 * time.Second},
	} {
		before := len(n.fake.Calls())
		if code, _, body := n.raw("POST", n.checkpointPath("default", "web", "side", tt.query)); code != 200 {
			t.Fatalf("%s: %d %q", tt.query, code, body)
		}
		calls := n.fake.Calls()
		last := calls[len(calls)-1]
		if len(calls) != before+1 {
			t.Fatalf("%s: %d runtime calls, want 1", tt.query, len(calls)-before)
		}
		got := last.Deadline.Sub(last.Received)
		if got < tt.want-3*time.Second || got > tt.want+time.Second {
			t.Errorf("timeout %q: CRI deadline %s after the call, want about %s", tt.query, got.Round(time.Second), tt.want)
		}
		if !strings.HasPrefix(filepath.Base(last.Request.Location), ".tmp-") || filepath.Dir(last.Request.Location) != n.checkpointsDir() {
			t.Errorf("the runtime must write to a hidden temporary file in the checkpoints dir, got %s", last.Request.Location)
		}
	}

	// Same container, same second: distinct names, nothing overwritten.
	names := map[string]bool{}
	for i := 0; i < 3; i++ {
		code, _, body := n.raw("POST", n.checkpointPath("default", "web", "app", ""))
		if code != 200 {
			t.Fatalf("checkpoint %d: %d %q", i, code, body)
		}
		json.Unmarshal([]byte(body), &answer)
		if names[answer.Items[0]] {
			t.Fatalf("archive name %s handed out twice", answer.Items[0])
		}
		names[answer.Items[0]] = true
	}

	// A runtime failure: 500 with the runtime's error, nothing left behind.
	n.fake.SetBehavior(fakecri.Behavior{Fail: status.Error(codes.Internal, "criu said no")})
	before := n.dirEntries(n.checkpointsDir())
	opsBefore, errsBefore = ops()
	code, _, body = n.raw("POST", n.checkpointPath("default", "web", "app", ""))
	wantBody := "checkpointing of default/" + n.podName("web") + "/app failed (rpc error: code = Internal desc = criu said no)"
	if code != 500 || strings.TrimSpace(body) != wantBody {
		t.Fatalf("failure: %d %q, want 500 %q", code, body, wantBody)
	}
	if after := n.dirEntries(n.checkpointsDir()); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("a failed checkpoint changed the directory: %v → %v", before, after)
	}
	opsAfter, errsAfter = ops()
	if opsAfter != opsBefore+1 || errsAfter != errsBefore+1 {
		t.Fatalf("failure metrics: operations +%v errors +%v, want +1 +1", opsAfter-opsBefore, errsAfter-errsBefore)
	}
}

func TestCheckpointGateOff(t *testing.T) {
	t.Parallel()
	n := startFakeWithPod(t, "--feature-gates", "ContainerCheckpoint=false")
	for _, method := range []string{"POST", "GET"} {
		if code, _, _ := n.raw(method, n.checkpointPath("default", "web", "app", "")); code != 404 {
			t.Fatalf("%s with the gate off: %d, want 404", method, code)
		}
	}
}

func TestCheckpointConcurrency(t *testing.T) {
	t.Parallel()
	n := newFakeNode(t)
	n.writeManifest("web.yaml", fakePodManifest("web", "a", "b", "c"))
	n.startKnode("--max-parallel-checkpoints", "2")
	n.eventually(30*time.Second, "web running", func() bool {
		p, ok := n.podStatus("default", "web")
		return ok && p == "Running"
	})
	block := make(chan struct{})
	n.fake.SetBehavior(fakecri.Behavior{Block: block})
	type result struct {
		code int
		hdr  http.Header
	}
	results := make(chan result, 3)
	var wg sync.WaitGroup
	for _, c := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func(c string) {
			defer wg.Done()
			code, hdr, _ := n.raw("POST", n.checkpointPath("default", "web", c, ""))
			results <- result{code, hdr}
		}(c)
		// Start them in order, so the one left waiting is c.
		if reached := map[string]int{"a": 1, "b": 2}[c]; reached > 0 {
			n.eventually(10*time.Second, "request "+c+" at the runtime", func() bool {
				return len(n.fake.Calls()) >= reached
			})
		}
	}
	time.Sleep(500 * time.Millisecond)
	if got := len(n.fake.Calls()); got != 2 {
		t.Fatalf("%d checkpoints reached the runtime at once; the limit is 2", got)
	}
	// The same container again while its checkpoint runs: 409 with Retry-After.
	code, hdr, body := n.raw("POST", n.checkpointPath("default", "web", "a", ""))
	if code != 409 || hdr.Get("Retry-After") == "" {
		t.Fatalf("concurrent checkpoint of one container: %d %q (Retry-After %q), want 409", code, body, hdr.Get("Retry-After"))
	}
	close(block)
	wg.Wait()
	close(results)
	for r := range results {
		if r.code != 200 {
			t.Fatalf("a queued checkpoint failed: %d", r.code)
		}
	}
	if got := len(n.fake.Calls()); got != 3 {
		t.Fatalf("%d runtime calls, want 3", got)
	}
}

func TestCheckpointCrashLeavesNoTemporary(t *testing.T) {
	t.Parallel()
	n := startFakeWithPod(t)
	block := make(chan struct{})
	defer close(block)
	n.fake.SetBehavior(fakecri.Behavior{Block: block})
	hc := n.httpClient()
	go func() {
		// This request dies with knode; its answer does not matter.
		if resp, err := hc.Post(n.url()+n.checkpointPath("default", "web", "app", ""), "", nil); err == nil {
			resp.Body.Close()
		}
	}()
	n.eventually(20*time.Second, "the runtime writing a temporary archive", func() bool {
		for _, e := range n.dirEntries(n.checkpointsDir()) {
			if strings.HasPrefix(e, ".tmp-") {
				return true
			}
		}
		return false
	})
	n.knode.kill()
	n.startKnode("--runtime-request-timeout", "30s")
	n.eventually(20*time.Second, "the temporary archive removed at start", func() bool {
		return len(n.dirEntries(n.checkpointsDir())) == 0
	})
}

func TestCheckpointRetentionAndListing(t *testing.T) {
	t.Parallel()
	n := startFakeWithPod(t, "--checkpoint-max-per-container", "2", "--checkpoint-max-total-bytes", "300Ki")
	c := n.api()
	n.fake.SetBehavior(fakecri.Behavior{Size: 100 << 10})
	var paths []string
	for i := 0; i < 3; i++ {
		code, _, body := n.raw("POST", n.checkpointPath("default", "web", "app", ""))
		if code != 200 {
			t.Fatalf("%d %q", code, body)
		}
		var answer struct{ Items []string }
		json.Unmarshal([]byte(body), &answer)
		paths = append(paths, answer.Items[0])
	}
	n.eventually(10*time.Second, "the oldest archive deleted by the per-container limit of 2", func() bool {
		_, err := os.Stat(paths[0])
		return os.IsNotExist(err)
	})
	// The counter moves just after the file goes.
	n.eventually(10*time.Second, "one deletion counted for the count limit", func() bool {
		return metricValue(t, c, "knode_checkpoint_archives_deleted_total", map[string]string{"reason": "count"}) == 1
	})
	// The byte budget (300 KiB) holds two 100 KiB archives and their tar
	// headers, not three: a third archive makes the oldest go.
	code, _, _ := n.raw("POST", n.checkpointPath("default", "web", "side", ""))
	if code != 200 {
		t.Fatalf("side checkpoint: %d", code)
	}
	n.eventually(10*time.Second, "the byte budget to remove the oldest archive", func() bool {
		_, err := os.Stat(paths[1])
		return os.IsNotExist(err)
	})
	n.eventually(10*time.Second, "one deletion counted for the byte budget", func() bool {
		return metricValue(t, c, "knode_checkpoint_archives_deleted_total", map[string]string{"reason": "bytes"}) == 1
	})

	// Listing, filtering, inspection, deletion.
	code, _, body := n.raw("GET", "/checkpoints?container=app")
	var list struct {
		Items []struct{ Name, Namespace, Pod, Container string }
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Items) != 1 ||
		list.Items[0].Container != "app" || list.Items[0].Namespace != "default" || list.Items[0].Pod != n.podName("web") {
		t.Fatalf("list: %d %s", code, body)
	}
	name := list.Items[0].Name
	code, _, body = n.raw("GET", "/checkpoints/"+name)
	var details struct {
		Image   string
		Members []struct{ Name string }
	}
	if code != 200 || json.Unmarshal([]byte(body), &details) != nil || details.Image != "fake/image:1" || len(details.Members) != 5 {
		t.Fatalf("inspect: %d %s", code, body)
	}
	for _, bad := range []string{"..%2F..%2Fetc%2Fpasswd", "nope.tar", ".tmp-x", "checkpoint-x"} {
		if code, _, _ := n.raw("GET", "/checkpoints/"+bad); code != 404 {
			t.Errorf("inspect %q: %d, want 404", bad, code)
		}
		if code, _, _ := n.raw("DELETE", "/checkpoints/"+bad); code != 404 {
			t.Errorf("delete %q: %d, want 404", bad, code)
		}
	}
	if code, _, _ := n.raw("DELETE", "/checkpoints/"+name); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if _, err := os.Stat(filepath.Join(n.checkpointsDir(), name)); !os.IsNotExist(err) {
		t.Fatal("archive still there after DELETE")
	}
}

// waitKnodeRunning waits until knode itself reports the container running,
// which is what the checkpoint API acts on (the runtime may say so a moment
// earlier).
func (n *node) waitKnodeRunning(ns, pod, container string) {
	n.t.Helper()
	n.eventually(30*time.Second, "knode to report "+pod+"/"+container+" running", func() bool {
		code, _, body := n.raw("GET", "/pods")
		if code != 200 {
			return false
		}
		var list struct {
			Items []struct {
				Metadata struct{ Name, Namespace string }
				Status   struct {
					ContainerStatuses []struct {
						Name  string
						State struct{ Running *struct{} }
					}
				}
			}
		}
		_ = json.Unmarshal([]byte(body), &list)
		for _, p := range list.Items {
			if p.Metadata.Namespace != ns || p.Metadata.Name != n.podName(pod) {
				continue
			}
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Name == container && cs.State.Running != nil {
					return true
				}
			}
		}
		return false
	})
}
