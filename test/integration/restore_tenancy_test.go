package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"knode.io/knode/internal/client"
	"knode.io/knode/test/controlplane"
)

// tenantRestorePod is a static pod in namespace whose container main asks
// to be restored from ref.
func tenantRestorePod(name, namespace, ref string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: ` + name + `
  namespace: ` + namespace + `
  annotations:
    checkpoint.knode.io/restore-main: "` + ref + `"
spec:
  containers:
  - {name: main, image: ` + busybox + `, command: ["sleep", "3600"]}
`
}

// podStates reads each pod's phase, reason and message from /pods.
func (n *node) podStates() map[string][3]string {
	n.t.Helper()
	list, err := n.api().Pods(n.t.Context())
	if err != nil {
		return nil
	}
	out := map[string][3]string{}
	for _, p := range list.Items {
		out[p.Namespace+"/"+strings.TrimSuffix(p.Name, "-"+n.name)] = [3]string{string(p.Status.Phase), p.Status.Reason, p.Status.Message}
	}
	return out
}

// TestRestoreStaysInItsNamespace: a checkpoint of a pod in team-a holds
// that pod's memory. A pod in team-b that names it is refused exactly as
// if it did not exist (so is one naming a host file, or nothing), and a
// pod in team-a restores it (real CRIU, containerd 2.3.7).
func TestRestoreStaysInItsNamespace(t *testing.T) {
	t.Parallel()
	n := newNodeWithRuntime(t, criu41(t), containerd237(t))
	n.writeManifest("src.yaml", podManifest("src", "team-a", "Always", "echo secret-of-team-a; exec sleep 3600"))
	n.startKnode()
	n.waitRunning("team-a", "src", "main")
	n.waitKnodeRunning("team-a", "src", "main")
	code, _, body := n.raw("POST", n.checkpointPath("team-a", "src", "main", ""))
	if code != 200 {
		t.Fatalf("checkpoint: %d %s", code, body)
	}
	var answer struct{ Items []string }
	json.Unmarshal([]byte(body), &answer)
	archive := answer.Items[0]
	name := filepath.Base(archive)

	refs := map[string]string{
		"thief":       name,            // another namespace's archive, by name
		"thief-path":  archive,         // ... and by path
		"host-file":   "/etc/hostname", // a host file outside the restore directories
		"no-such-one": "checkpoint-none_team-b-main-2026-01-01T00:00:00Z.tar",
	}
	for pod, ref := range refs {
		n.writeManifest(pod+".yaml", tenantRestorePod(pod, "team-b", ref))
	}
	n.eventually(90*time.Second, "every team-b restore to be refused", func() bool {
		states := n.podStates()
		for pod := range refs {
			if s := states["team-b/"+pod]; s[0] != "Failed" || s[1] != "CheckpointNotFound" {
				return false
			}
		}
		return true
	})
	states := n.podStates()
	want := ""
	for pod, ref := range refs {
		msg := strings.ReplaceAll(states["team-b/"+pod][2], ref, "REF")
		if want == "" {
			want = msg
		}
		if msg != want {
			t.Fatalf("%s: message %q differs from %q: a pod can tell the cases apart", pod, msg, want)
		}
		if len(n.containers("team-b", pod, "")) != 0 {
			t.Fatalf("%s: a container was created", pod)
		}
	}
	if !strings.Contains(want, `not available to pods of namespace "team-b"`) {
		t.Fatalf("message %q", want)
	}
	if !strings.Contains(n.knodeLog(), "taken in another namespace") {
		t.Fatal("the log does not tell the operator why")
	}

	// In its own namespace the archive restores.
	n.writeManifest("heir.yaml", tenantRestorePod("heir", "team-a", name))
	n.waitRunning("team-a", "heir", "main")
	n.eventually(30*time.Second, "heir restored", func() bool {
		list, err := n.api().Pods(t.Context())
		if err != nil {
			return false
		}
		for _, p := range list.Items {
			if p.Name == n.podName("heir") {
				return strings.HasPrefix(p.Annotations["checkpoint.knode.io/restored-from"], name)
			}
		}
		return false
	})
}

// operatorClient presents a certificate the test CA issued to "operator".
func operatorClient(t *testing.T, pki *controlplane.PKI) (*http.Client, client.Options) {
	crt, key := issue(t, pki, "operator", "operator", nil)
	cert, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	return hc, client.Options{CertFile: crt, KeyFile: key, CAFile: pki.CAFile}
}

// postRestore sends POST /restores to n.
func postRestore(t *testing.T, hc *http.Client, n *node, req map[string]string) (int, string) {
	t.Helper()
	data, _ := json.Marshal(req)
	var resp *http.Response
	n.eventually(30*time.Second, "knode to serve", func() bool {
		var err error
		resp, err = hc.Post(n.url()+"/restores", "application/json", bytes.NewReader(data))
		return err == nil
	})
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestRestoresOnlyFromTrustedPeers: POST /restores makes the node connect
// with its peer credentials; a source that is not a trusted peer is
// refused before any connection, whoever asks.
func TestRestoresOnlyFromTrustedPeers(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	hc, opts := operatorClient(t, pki)
	src := newFakeNode(t)
	src.writeManifest("web.yaml", fakePodManifest("web", "app"))
	src.startKnode(append([]string{"--runtime-request-timeout", "30s"}, clusterFlags(t, pki, src.name)...)...)
	var archive string
	src.eventually(60*time.Second, "a checkpoint of web/app", func() bool {
		resp, err := hc.Post(src.url()+src.checkpointPath("default", "web", "app", ""), "", nil)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var answer struct{ Items []string }
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&answer) != nil || len(answer.Items) != 1 {
			return false
		}
		archive = filepath.Base(answer.Items[0])
		return true
	})
	source := src.url() + "/checkpoints/" + archive
	opts.Server = src.url()
	srcAPI, err := client.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	fetches := func() float64 {
		return metricValue(t, srcAPI, "kubelet_http_requests_total", map[string]string{"path": "checkpoints"})
	}

	// No --restore-peers, not in a cluster: nobody is trusted.
	untrusting := newFakeNode(t)
	untrusting.startKnode(clusterFlags(t, pki, untrusting.name)...)
	before := fetches()
	code, body := postRestore(t, hc, untrusting, map[string]string{"source": source, "name": "moved"})
	if code != http.StatusForbidden || !strings.HasPrefix(body, "UntrustedSource: ") {
		t.Fatalf("untrusted source: %d %q", code, body)
	}
	if after := fetches(); after != before {
		t.Fatalf("the node fetched from an untrusted source (%v requests)", after-before)
	}
	if entries, _ := os.ReadDir(filepath.Join(untrusting.rootDir(), "restore")); len(entries) != 0 {
		t.Fatalf("files left: %v", entries)
	}
	// Trusting other addresses is not trusting this one.
	other := newFakeNode(t)
	other.startKnode(append(clusterFlags(t, pki, other.name), "--restore-peers", "10.1.2.3,192.168.0.0/16")...)
	if code, body = postRestore(t, hc, other, map[string]string{"source": source, "name": "moved"}); code != http.StatusForbidden {
		t.Fatalf("source outside --restore-peers: %d %q", code, body)
	}

	// Named in --restore-peers: the archive comes.
	trusting := newFakeNode(t)
	trusting.startKnode(append(clusterFlags(t, pki, trusting.name), "--restore-peers", "127.0.0.1")...)
	code, body = postRestore(t, hc, trusting, map[string]string{"source": source, "name": "moved"})
	if code != http.StatusCreated {
		t.Fatalf("trusted source: %d %q", code, body)
	}
	if _, err := os.Stat(filepath.Join(trusting.rootDir(), "restore", archive)); err != nil {
		t.Fatal(err)
	}
	// A source that does not answer: a stable reason, not the dial error.
	code, body = postRestore(t, hc, trusting, map[string]string{"source": "https://127.0.0.1:1/checkpoints/checkpoint-x_default-app-2026-01-01T00:00:00Z.tar", "name": "other"})
	if code != http.StatusBadGateway || !strings.HasPrefix(body, "SourceUnreachable: ") || strings.Contains(body, "refused") || strings.Contains(body, "dial") {
		t.Fatalf("unreachable source: %d %q", code, body)
	}
}
