package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a CA shared by several nodes, as a cluster would have.
type testPKI struct {
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: dir, ca: ca, key: key, file: filepath.Join(dir, "ca.crt")}
	os.WriteFile(p.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	return p
}

// issue writes a certificate and key: a server certificate for 127.0.0.1,
// or a client certificate for cn in groups.
func (p *testPKI) issue(t *testing.T, name, cn string, server bool, groups ...string) (string, string) {
	t.Helper()
	var ips []net.IP
	if server {
		ips = []net.IP{net.ParseIP("127.0.0.1")}
	}
	return p.issueFor(t, name, cn, ips, groups...)
}

// issueFor issues a serving certificate valid for ips, or a client
// certificate when ips is empty.
func (p *testPKI) issueFor(t *testing.T, name, cn string, ips []net.IP, groups ...string) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: groups},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if len(ips) > 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = ips
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	crt, k := filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return crt, k
}

// clusterFlags make a node trust the shared CA and serve a certificate it signed.
func (p *testPKI) clusterFlags(t *testing.T, node string) []string {
	crt, key := p.issue(t, node+"-serving", node, true)
	pcrt, pkey := p.issue(t, node+"-peer", "system:node:"+node, false)
	return []string{"--client-ca-file", p.file, "--tls-cert-file", crt, "--tls-private-key-file", key,
		"--peer-client-certificate", pcrt, "--peer-client-key", pkey, "--peer-certificate-authority", p.file}
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	ctrd := containerd237(t)
	pki := newTestPKI(t)
	a := newNodeWithRuntime(t, criu41(t), ctrd)
	b := newNodeWithRuntime(t, criu41(t), ctrd)
	c := newNodeWithCRIU(t, criu41(t)) // containerd 2.4.2: cannot restore
	a.writeManifest("hog.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: hog}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: hog, image: "+busybox+", command: [memhog, \"16\"]}\n")
	for _, n := range []*node{a, b, c} {
		n.startKnode(pki.clusterFlags(t, n.name)...)
	}
	a.waitRunning("default", "hog", "hog")
	a.eventually(30*time.Second, "a few ticks", func() bool {
		counts, _ := ticks(a.logFile("default", "hog", "hog"))
		return len(counts) >= 3
	})
	opCrt, opKey := pki.issue(t, "operator", "operator", false)
	migrate := func(dest *node, extra ...string) (string, error) {
		args := append([]string{"migrate", "default/" + a.podName("hog"), "hog", "--server", a.url(), "--to", dest.url(),
			"--client-certificate", opCrt, "--client-key", opKey, "--certificate-authority", pki.file, "--name", "hog-moved", "--wait", "60s"}, extra...)
		out, err := exec.Command(knodeBinary, args...).CombinedOutput()
		return string(out), err
	}

	// To a runtime that cannot restore: it fails, the source keeps running,
	// nothing is left on the destination.
	before := a.running("default", "hog", "hog")
	out, err := migrate(c, "--stop-source")
	if err == nil || !strings.Contains(out, "RestoreNotSupported") || !strings.Contains(out, "the source keeps running") {
		t.Fatalf("migrate to containerd 2.4: %v: %s", err, out)
	}
	if now := a.running("default", "hog", "hog"); now == nil || now.Id != before.Id {
		t.Fatal("the source was disturbed by a failed migration")
	}
	c.eventually(30*time.Second, "the destination cleaned up", func() bool {
		m, _ := filepath.Glob(filepath.Join(c.manifests, "*"))
		r, _ := filepath.Glob(filepath.Join(c.rootDir(), "restore", "*"))
		return len(m) == 0 && len(r) == 0 && len(c.sandboxes("default", "hog-moved")) == 0
	})

	// To a runtime that can: checkpoint, transfer, restore, then stop the original.
	_, sumsBefore := ticks(a.logFile("default", "hog", "hog"))
	out, err = migrate(b, "--stop-source")
	if err != nil {
		t.Fatalf("migrate: %v: %s", err, out)
	}
	t.Logf("knode migrate:\n%s", out)
	for _, want := range []string{"checkpoint on", "transfer to", "restore on", "stop the original"} {
		if !strings.Contains(out, want) {
			t.Fatalf("migrate did not report %q: %s", want, out)
		}
	}
	b.waitRunning("default", "hog-moved", "hog")
	b.eventually(30*time.Second, "ticks on the destination", func() bool {
		counts, _ := ticks(b.logFile("default", "hog-moved", "hog"))
		return len(counts) >= 1
	})
	counts, sums := ticks(b.logFile("default", "hog-moved", "hog"))
	if counts[0] == 0 || sums[0] != sumsBefore[0] {
		t.Fatalf("the migrated container did not continue: first tick %d sha %s (source sha %s)", counts[0], sums[0], sumsBefore[0])
	}
	a.eventually(60*time.Second, "the original stopped", func() bool {
		return len(a.sandboxes("default", "hog")) == 0
	})
	if _, err := os.Stat(filepath.Join(a.rootDir(), "stopped-manifests", "hog.yaml")); err != nil {
		t.Fatalf("the original's manifest was not kept aside: %v", err)
	}
}
