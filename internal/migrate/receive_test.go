package migrate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"knode.io/knode/internal/apierr"
	"knode.io/knode/internal/client"
)

const testArchiveName = "checkpoint-web_team-a-app-2026-01-02T03:04:05Z.tar"

// source is another node's API serving one archive over real TLS.
type source struct {
	srv      *httptest.Server
	requests atomic.Int32
	handler  atomic.Pointer[http.HandlerFunc]
}

func newSource(t *testing.T, archive []byte) *source {
	s := &source{}
	sum := sha256.Sum256(archive)
	serve := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/checkpoints/"+testArchiveName+"/content" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Checkpoint-Sha256", hex.EncodeToString(sum[:]))
		w.Header().Set("Content-Length", strconv.Itoa(len(archive)))
		w.Write(archive)
	})
	s.handler.Store(&serve)
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		(*s.handler.Load())(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *source) url() string { return s.srv.URL + "/checkpoints/" + testArchiveName }

// peerCredentials writes a client certificate and the source's CA for the receiver.
func peerCredentials(t *testing.T, s *source) *client.Options {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "system:node:b"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	o := &client.Options{CertFile: filepath.Join(dir, "c.crt"), KeyFile: filepath.Join(dir, "c.key"), CAFile: filepath.Join(dir, "ca.crt")}
	must(t, os.WriteFile(o.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	must(t, os.WriteFile(o.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	must(t, os.WriteFile(o.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw}), 0o600))
	return o
}

func newReceiver(t *testing.T, s *source, peers ...string) *Receiver {
	p, err := NewPeers(peers, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	r := &Receiver{RestoreDir: filepath.Join(base, "restore"), ManifestDir: filepath.Join(base, "manifests"), NodeName: "b",
		Peer: peerCredentials(t, s), Peers: p, Log: quietLog()}
	must(t, os.MkdirAll(r.ManifestDir, 0o700))
	must(t, os.MkdirAll(r.RestoreDir, 0o700))
	return r
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	list, _ := os.ReadDir(dir)
	var out []string
	for _, e := range list {
		out = append(out, e.Name())
	}
	return out
}

func answer(err error) (apierr.Kind, string, int) {
	var ce *apierr.Error
	if errors.As(err, &ce) {
		return ce.Kind, ce.Msg, ce.RetryAfter
	}
	return apierr.Unknown, "", 0
}

func TestReceiveFromTrustedPeer(t *testing.T) {
	s := newSource(t, testArchive(t, "team-a"))
	r := newReceiver(t, s, "127.0.0.1")
	res, err := r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Namespace != "team-a" || res.Archive != filepath.Join(r.RestoreDir, testArchiveName) || res.Pod != "moved-b" {
		t.Fatalf("result %+v", res)
	}
	if got := entries(t, r.RestoreDir); len(got) != 1 || got[0] != testArchiveName {
		t.Fatalf("restore dir holds %v", got)
	}
	if _, err := os.Stat(filepath.Join(r.ManifestDir, "restored-moved.json")); err != nil {
		t.Fatal(err)
	}
}

func TestReceiveRefusesUntrustedPeers(t *testing.T) {
	s := newSource(t, testArchive(t, "team-a"))
	for _, peers := range [][]string{nil, {"10.1.2.3"}, {"127.0.0.1:1"}, {"10.0.0.0/8"}, {"localhost"}} {
		r := newReceiver(t, s, peers...)
		_, err := r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved"})
		code, body, _ := answer(err)
		if code != apierr.Forbidden || !strings.HasPrefix(body, "UntrustedSource: ") {
			t.Fatalf("peers %v: %d %q (%v)", peers, code, body, err)
		}
		if n := s.requests.Load(); n != 0 {
			t.Fatalf("peers %v: the untrusted source was contacted %d times", peers, n)
		}
		if e := entries(t, r.RestoreDir); len(e) != 0 {
			t.Fatalf("left %v", e)
		}
	}
	// Trusted by CIDR, by host:port, or as a Node of the cluster.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.srv.URL, "https://"))
	for _, peers := range [][]string{{"127.0.0.0/8"}, {"127.0.0.1:" + port}} {
		r := newReceiver(t, s, peers...)
		if _, err := r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved"}); err != nil {
			t.Fatalf("peers %v: %v", peers, err)
		}
	}
	r := newReceiver(t, s)
	r.Peers, _ = NewPeers(nil, nodeList{"10.0.0.9:10250", "127.0.0.1:" + port})
	if _, err := r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved"}); err != nil {
		t.Fatalf("a Node's address: %v", err)
	}
	// A Node's address at another port is not the node's API.
	r = newReceiver(t, s)
	r.Peers, _ = NewPeers(nil, nodeList{"127.0.0.1:10250"})
	if _, err := r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved"}); err == nil {
		t.Fatal("a Node's address at another port was trusted")
	}
}

type nodeList []string

func (n nodeList) NodeEndpoints(context.Context) ([]string, error) { return n, nil }

func TestReceiveStaysInTheArchivesNamespace(t *testing.T) {
	s := newSource(t, testArchive(t, "team-a"))
	r := newReceiver(t, s, "127.0.0.1")
	_, err := r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved", Namespace: "team-b"})
	if code, body, _ := answer(err); code != apierr.Forbidden || !strings.HasPrefix(body, "CheckpointNotAllowed: ") {
		t.Fatalf("into another namespace: %d %q", code, body)
	}
	if e := append(entries(t, r.RestoreDir), entries(t, r.ManifestDir)...); len(e) != 0 {
		t.Fatalf("a refused receive left %v", e)
	}
	r.AcrossNamespaces = true
	if res, err := r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved", Namespace: "team-b"}); err != nil || res.Namespace != "team-b" {
		t.Fatalf("with --restore-across-namespaces: %+v %v", res, err)
	}
}

func TestReceiveSizeIsAdmittedBeforeWriting(t *testing.T) {
	archive := testArchive(t, "team-a")
	s := newSource(t, archive)
	// No room on the filesystem.
	r := newReceiver(t, s, "127.0.0.1")
	r.FreeBytes = func(string) (int64, error) { return int64(len(archive)) - 1, nil }
	_, err := r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved"})
	if code, body, _ := answer(err); code != apierr.TooLarge || !strings.HasPrefix(body, "ArchiveTooLarge: ") {
		t.Fatalf("no room: %d %q", code, body)
	}
	if e := entries(t, r.RestoreDir); len(e) != 0 {
		t.Fatalf("a refused archive left %v", e)
	}
	// Over the checkpoint budget, counting archives already received.
	r = newReceiver(t, s, "127.0.0.1")
	must(t, os.WriteFile(filepath.Join(r.RestoreDir, "old.tar"), make([]byte, 100), 0o600))
	r.MaxTotalBytes = int64(len(archive)) + 99
	_, err = r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved"})
	if code, body, _ := answer(err); code != apierr.TooLarge || !strings.Contains(body, "--checkpoint-max-total-bytes") {
		t.Fatalf("over budget: %d %q", code, body)
	}
	if e := entries(t, r.RestoreDir); len(e) != 1 {
		t.Fatalf("a refused archive left %v", e)
	}
	r.MaxTotalBytes = int64(len(archive)) + 100
	if _, err := r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved"}); err != nil {
		t.Fatalf("within budget: %v", err)
	}
}

func TestReceiveCutsALongerBody(t *testing.T) {
	archive := testArchive(t, "team-a")
	s := newSource(t, archive)
	wrote := make(chan int64, 1)
	long := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Announces a small archive, then streams far more.
		w.Header().Set("X-Checkpoint-Size", "100")
		w.Header().Set("Trailer", "X-Checkpoint-Sha256")
		var n int64
		for i := 0; i < 64; i++ {
			m, err := w.Write(make([]byte, 64<<10))
			n += int64(m)
			if err != nil {
				break
			}
			w.(http.Flusher).Flush()
		}
		wrote <- n
	})
	s.handler.Store(&long)
	r := newReceiver(t, s, "127.0.0.1")
	var admitted int64
	r.FreeBytes = func(string) (int64, error) { return 1 << 40, nil }
	_, err := r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved"})
	if code, body, _ := answer(err); code != apierr.Upstream || !strings.HasPrefix(body, "SourceInvalid: ") {
		t.Fatalf("longer body: %d %q", code, body)
	}
	<-wrote
	if e := entries(t, r.RestoreDir); len(e) != 0 {
		t.Fatalf("left %v", e)
	}
	if r.reserved != admitted {
		t.Fatalf("reservation not released: %d", r.reserved)
	}
}

func TestReceiveBoundsConcurrency(t *testing.T) {
	archive := testArchive(t, "team-a")
	s := newSource(t, archive)
	started, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		http.NotFound(w, r)
	})
	s.handler.Store(&slow)
	var once sync.Once
	done := func() { once.Do(func() { close(release) }) }
	t.Cleanup(done)
	r := newReceiver(t, s, "127.0.0.1")
	r.MaxParallel = 1
	first := make(chan error, 1)
	go func() {
		_, err := r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "one"})
		first <- err
	}()
	<-started
	_, err := r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "two"})
	code, body, retry := answer(err)
	if code != apierr.Unavailable || retry <= 0 || !strings.HasPrefix(body, "TooManyRestores: ") {
		t.Fatalf("second receive while one runs: %d %q retry %d", code, body, retry)
	}
	done()
	if code, body, _ := answer(<-first); code != apierr.Upstream || !strings.HasPrefix(body, "SourceRefused: ") || strings.Contains(body, "404") {
		t.Fatalf("first: %d %q", code, body)
	}
}

// TestReceiveErrorsDoNotEchoTheNetwork: the caller learns what failed,
// not the dial, TLS or source text (which could map this node's network).
func TestReceiveErrorsDoNotEchoTheNetwork(t *testing.T) {
	s := newSource(t, testArchive(t, "team-a"))
	// A closed port.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	r := newReceiver(t, s, "127.0.0.1")
	_, err := r.Receive(context.Background(), ReceiveRequest{Source: "https://" + closed + "/checkpoints/" + testArchiveName, Name: "moved"})
	code, body, _ := answer(err)
	if code != apierr.Upstream || !strings.HasPrefix(body, "SourceUnreachable: ") {
		t.Fatalf("closed port: %d %q", code, body)
	}
	if !strings.Contains(err.(*apierr.Error).Err.Error(), "connection refused") {
		t.Fatalf("the log-side error lost the cause: %v", err.(*apierr.Error).Err)
	}
	for _, leak := range []string{"dial", "refused", "connect"} {
		if strings.Contains(body, leak) {
			t.Fatalf("answer %q echoes the dial error", body)
		}
	}
	// A server whose certificate this node does not trust.
	r.Peer = peerCredentials(t, s)
	r.Peer.CAFile = r.Peer.CertFile // a CA that did not sign the source's certificate
	_, err = r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved"})
	code, body, _ = answer(err)
	if code != apierr.Upstream || strings.Contains(body, "x509") || strings.Contains(body, "certificate") || strings.Contains(body, "tls") {
		t.Fatalf("TLS failure: %d %q", code, body)
	}
	// A source that stops sending: the read deadline ends it, nothing stays.
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	stall := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	s.handler.Store(&stall)
	r = newReceiver(t, s, "127.0.0.1")
	r.ReadTimeout = 100 * time.Millisecond
	_, err = r.Receive(context.Background(), ReceiveRequest{Source: s.url(), Name: "moved"})
	if code, body, _ := answer(err); code != apierr.Upstream || !strings.HasPrefix(body, "SourceUnreachable: ") {
		t.Fatalf("stalled source: %d %q (%v)", code, body, err)
	}
	if e := entries(t, r.RestoreDir); len(e) != 0 {
		t.Fatalf("a stalled download left %v", e)
	}
}

func TestReceiveValidatesNames(t *testing.T) {
	s := newSource(t, testArchive(t, "team-a"))
	r := newReceiver(t, s, "127.0.0.1")
	for _, req := range []ReceiveRequest{
		{Source: s.url(), Name: "../x"},
		{Source: s.url(), Name: "ok", Namespace: "../etc"},
		{Source: s.srv.URL + "/checkpoints/../etc/passwd", Name: "ok"},
		{Source: s.url() + "?x=1", Name: "ok"},
		{Source: strings.Replace(s.url(), "https://", "https://user:pw@", 1), Name: "ok"},
		{Source: strings.Replace(s.url(), "https://", "http://", 1), Name: "ok"},
	} {
		if _, err := r.Receive(context.Background(), req); err == nil {
			t.Fatalf("%+v accepted", req)
		} else if code, _, _ := answer(err); code != apierr.Invalid {
			t.Fatalf("%+v: %v", req, err)
		}
	}
	if s.requests.Load() != 0 {
		t.Fatal("a bad request reached the source")
	}
}

func TestPeersParse(t *testing.T) {
	for _, bad := range []string{"10.0.0.1:x", "a b", "[::1]:0"} {
		if _, err := NewPeers([]string{bad}, nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	p, err := NewPeers([]string{"Node-A.example", "[fd00::1]:10250", "192.168.0.0/16"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		host, port string
		ok         bool
	}{
		{"node-a.example", "10250", true}, {"node-b.example", "10250", false},
		{"fd00::1", "10250", true}, {"fd00::1", "22", false},
		{"192.168.3.4", "10250", true}, {"::ffff:192.168.3.4", "10250", true}, {"192.169.0.1", "10250", false},
	} {
		if ok, _ := p.Trusted(context.Background(), tt.host, tt.port); ok != tt.ok {
			t.Errorf("%s:%s trusted=%v, want %v", tt.host, tt.port, ok, tt.ok)
		}
	}
}

// TestUndoOfABadNameIsInvalid: a name that cannot be a pod's is the caller's
// mistake (400), not the node's failure (500).
func TestUndoOfABadNameIsInvalid(t *testing.T) {
	r := &Receiver{ManifestDir: t.TempDir(), RestoreDir: t.TempDir()}
	for _, name := range []string{"../etc", "Bad_Name", ""} {
		if err := r.Undo(name); apierr.KindOf(err) != apierr.Invalid {
			t.Errorf("Undo(%q) = %v (kind %v); want an Invalid error", name, err, apierr.KindOf(err))
		}
	}
	if err := r.Undo("gone"); apierr.KindOf(err) != apierr.NotFound {
		t.Errorf("Undo of a pod never received = %v; want NotFound", err)
	}
}
