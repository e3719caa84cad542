package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"knode.io/knode/test/controlplane"
)

func newTestPKI(t *testing.T) *controlplane.PKI {
	t.Helper()
	p, err := controlplane.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// issue issues a serving certificate for ips, or a client certificate for
// cn in groups when ips is empty.
func issue(t *testing.T, p *controlplane.PKI, name, cn string, ips []net.IP, groups ...string) (crt, key string) {
	t.Helper()
	crt, key, err := p.Issue(name, cn, ips, groups...)
	if err != nil {
		t.Fatal(err)
	}
	return crt, key
}

// clusterFlags make a node trust the shared CA and serve a certificate it signed.
func clusterFlags(t *testing.T, p *controlplane.PKI, node string) []string {
	crt, key := issue(t, p, node+"-serving", node, controlplane.Loopback())
	pcrt, pkey := issue(t, p, node+"-peer", "system:node:"+node, nil)
	return []string{"--client-ca-file", p.CAFile, "--tls-cert-file", crt, "--tls-private-key-file", key,
		"--peer-client-certificate", pcrt, "--peer-client-key", pkey, "--peer-certificate-authority", p.CAFile}
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
		n.startKnode(append(clusterFlags(t, pki, n.name), "--restore-peers", "127.0.0.1")...)
	}
	a.waitRunning("default", "hog", "hog")
	a.eventually(30*time.Second, "a few ticks", func() bool {
		counts, _ := ticks(a.logFile("default", "hog", "hog"))
		return len(counts) >= 3
	})
	opCrt, opKey := issue(t, pki, "operator", "operator", nil)
	migrate := func(dest *node, extra ...string) (string, error) {
		args := append([]string{"migrate", "default/" + a.podName("hog"), "hog", "--server", a.url(), "--to", dest.url(),
			"--client-certificate", opCrt, "--client-key", opKey, "--certificate-authority", pki.CAFile, "--name", "hog-moved", "--wait", "60s"}, extra...)
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
