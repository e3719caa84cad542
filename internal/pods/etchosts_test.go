package pods

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	p, err := f.m.d.files.writeEtcHosts(&writtenFile{}, pod, "10.88.0.5")
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
	p, err := f.m.d.files.writeEtcHosts(&writtenFile{}, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost node\n" {
		t.Fatalf("content %q", b)
	}
	if err := os.WriteFile(nodeHosts, make([]byte, maxNodeHostsBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.d.files.writeEtcHosts(&writtenFile{}, pod, ""); err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("an oversized node hosts file: %v", err)
	}
}

// The managed hosts file is written when its content changes or a
// container changed it, not before every container create.
func TestEtcHostsWrittenOnlyWhenChanged(t *testing.T) {
	f := newFixture(t)
	pod := testPod("Always")
	state := &writtenFile{}
	write := func(ip string) (string, uint64) {
		t.Helper()
		p, err := f.m.d.files.writeEtcHosts(state, pod, ip)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return p, fi.Sys().(*syscall.Stat_t).Ino
	}
	p, first := write("10.88.0.5")
	if _, again := write("10.88.0.5"); again != first {
		t.Fatal("unchanged content was written again")
	}
	if _, changed := write("10.88.0.6"); changed == first {
		t.Fatal("a new pod IP was not written")
	}
	want, _ := os.ReadFile(p)
	for name, change := range map[string]func() error{
		"edited in place": func() error {
			return os.WriteFile(p, []byte(strings.Replace(string(want), "10.88.0.6", "10.88.0.7", 1)), 0o644)
		},
		"replaced by a link": func() error {
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("/etc/passwd", p)
		},
		"chmodded": func() error { return os.Chmod(p, 0o600) },
	} {
		if err := change(); err != nil {
			t.Fatal(err)
		}
		write("10.88.0.6")
		fi, err := os.Lstat(p)
		got, _ := os.ReadFile(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 || string(got) != string(want) {
			t.Fatalf("%s: not written again: %v %v %q", name, fi, err, got)
		}
	}
}
