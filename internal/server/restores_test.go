package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"knode.io/knode/internal/client"
	"knode.io/knode/internal/migrate"
)

const restoreArchive = "checkpoint-web_default-app-2026-01-02T03:04:05Z.tar"

// peerFiles writes a self-signed client certificate, its key, and uses it as the CA too.
func peerFiles(t *testing.T) *client.Options {
	t.Helper()
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "system:node:b"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	o := &client.Options{CertFile: filepath.Join(dir, "c.crt"), KeyFile: filepath.Join(dir, "c.key")}
	o.CAFile = o.CertFile
	if err := os.WriteFile(o.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(o.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return o
}

// silentPeer accepts connections and never answers; it counts them.
func silentPeer(t *testing.T) (string, *atomic.Int32, chan struct{}) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	accepted := make(chan struct{}, 16)
	stop := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			accepted <- struct{}{}
			go func() { <-stop; c.Close() }()
		}
	}()
	t.Cleanup(func() { close(stop); ln.Close() })
	return ln.Addr().String(), &n, accepted
}

func restoreServer(t *testing.T, peers []string, maxParallel int) *Server {
	p, err := migrate.NewPeers(peers, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	os.MkdirAll(filepath.Join(base, "manifests"), 0o700)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rc := &migrate.Receiver{RestoreDir: filepath.Join(base, "restore"), ManifestDir: filepath.Join(base, "manifests"), NodeName: "b",
		Peer: peerFiles(t), Peers: p, MaxParallel: maxParallel, Log: log}
	return New(Config{NodeName: "b", Receiver: rc, Log: log})
}

func postRestore(ctx context.Context, s *Server, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(ctx, "POST", "/restores", strings.NewReader(body))
	rec := httptest.NewRecorder()
	s.secure.ServeHTTP(rec, req)
	return rec
}

func TestRestoresRefuseUntrustedPeers(t *testing.T) {
	addr, conns, _ := silentPeer(t)
	s := restoreServer(t, []string{"10.20.30.40"}, 0)
	rec := postRestore(context.Background(), s, `{"source":"https://`+addr+`/checkpoints/`+restoreArchive+`","name":"moved"}`)
	if rec.Code != http.StatusForbidden || !strings.HasPrefix(rec.Body.String(), "UntrustedSource: ") {
		t.Fatalf("untrusted peer: %d %q", rec.Code, rec.Body)
	}
	if conns.Load() != 0 {
		t.Fatal("knode connected to an untrusted peer")
	}
	// A field knode does not implement is refused, not ignored.
	rec = postRestore(context.Background(), s, `{"source":"https://10.20.30.40/checkpoints/`+restoreArchive+`","name":"moved","node":"x"}`)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "unknown field") {
		t.Fatalf("unknown field: %d %q", rec.Code, rec.Body)
	}
}

func TestRestoresDoNotEchoDialErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	s := restoreServer(t, []string{"127.0.0.1"}, 0)
	rec := postRestore(context.Background(), s, `{"source":"https://`+closed+`/checkpoints/`+restoreArchive+`","name":"moved"}`)
	body := rec.Body.String()
	if rec.Code != http.StatusBadGateway || !strings.HasPrefix(body, "SourceUnreachable: ") {
		t.Fatalf("unreachable peer: %d %q", rec.Code, body)
	}
	for _, leak := range []string{"dial", "refused", "tcp"} {
		if strings.Contains(body, leak) {
			t.Fatalf("answer %q echoes the dial error", body)
		}
	}
}

func TestRestoresBoundConcurrency(t *testing.T) {
	addr, _, accepted := silentPeer(t)
	s := restoreServer(t, []string{"127.0.0.1"}, 1)
	body := `{"source":"https://` + addr + `/checkpoints/` + restoreArchive + `","name":"moved"}`
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- postRestore(ctx, s, body) }()
	<-accepted // the first receive holds its slot, waiting for the TLS handshake
	rec := postRestore(context.Background(), s, body)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.HasPrefix(rec.Body.String(), "TooManyRestores: ") {
		t.Fatalf("second receive: %d %q Retry-After %q", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	cancel()
	if first := <-done; first.Code != http.StatusBadGateway {
		t.Fatalf("first receive after cancel: %d %q", first.Code, first.Body)
	}
}
