package pods

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A link a container (or anyone) left at the pod's etc-hosts is replaced,
// never written through.
func TestEtcHostsReplacesAPlantedLink(t *testing.T) {
	f := newFixture(t)
	pod := testPod("Always")
	podDir := PodDir(f.m.opts.RootDir, pod)
	if err := os.MkdirAll(podDir, 0o750); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(podDir, "etc-hosts")); err != nil {
		t.Fatal(err)
	}
	p, err := f.m.d.files.writeEtcHosts(pod, "10.88.0.5")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep\n" {
		t.Fatalf("written through the link: %q", b)
	}
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Fatalf("etc-hosts: %v, %v", fi, err)
	}
	if b, _ := os.ReadFile(p); !strings.HasSuffix(string(b), "10.88.0.5\tweb-n1\n") {
		t.Fatalf("content %q", b)
	}
}

// A host-network pod copies the node's hosts file, read with a bound.
func TestEtcHostsHostNetworkCopiesTheNodes(t *testing.T) {
	f := newFixture(t)
	pod := testPod("Always")
	pod.Spec.HostNetwork = true
	nodeHosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(nodeHosts, []byte("127.0.0.1 localhost node\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.m.d.files.NodeEtcHosts = nodeHosts
	p, err := f.m.d.files.writeEtcHosts(pod, "")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost node\n" {
		t.Fatalf("content %q", b)
	}
	if err := os.WriteFile(nodeHosts, make([]byte, maxNodeHostsBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.d.files.writeEtcHosts(pod, ""); err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("an oversized node hosts file: %v", err)
	}
}
