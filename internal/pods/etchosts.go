package pods

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/safefs"
)

// maxNodeHostsBytes bounds the node's hosts file a host-network pod gets a
// copy of; a bigger one is refused rather than read without end.
const maxNodeHostsBytes = 1 << 20

// writeEtcHosts makes the pod's managed hosts file hold what the kubelet's
// ensureHostsFile writes before each container is created (the pod IP is
// known only once the sandbox runs), beneath the opened pod directory:
// containers get it writable, so what is there may be anything a
// container left, and it is replaced, never written through. A file that
// still is what knode last wrote (its stamp, or read back once) is left
// alone; one a container changed is written again, as the kubelet's
// rewrite at each container start would.
func (d *podFiles) writeEtcHosts(state *writtenFile, pod *v1.Pod, podIP string) (string, error) {
	var nodeHosts []byte
	var ips []string
	if pod.Spec.HostNetwork {
		var err error
		if nodeHosts, err = readNodeHosts(d.nodeEtcHosts()); err != nil {
			return "", err
		}
	} else {
		ips = []string{podIP}
	}
	content, err := crispec.HostsFile(pod, ips, d.node.ClusterDomain, nodeHosts)
	if err != nil {
		return "", err
	}
	podDir := PodDir(d.RootDir, pod)
	if err := os.MkdirAll(podDir, 0o750); err != nil {
		return "", fmt.Errorf("managed /etc/hosts: %w", err)
	}
	pd, err := safefs.Open(podDir)
	if err != nil {
		return "", fmt.Errorf("managed /etc/hosts: %w", err)
	}
	defer pd.Close()
	if err := state.write(pd, crispec.EtcHostsFile, content, 0o644, time.Now()); err != nil {
		return "", fmt.Errorf("managed /etc/hosts: %w", err)
	}
	return filepath.Join(podDir, crispec.EtcHostsFile), nil
}

// writtenFile is a file knode writes beneath a directory containers can
// change: what it last wrote there, and the file's stamp once it was found
// still holding that.
type writtenFile struct {
	mu      sync.Mutex
	written *[sha256.Size]byte
	// verified is the file's stamp when it was last found holding written
	// and settled; nil until then.
	verified *safefs.Stamp
}

// write makes name beneath d hold content with mode perm, writing only
// when it does not already: the file's stamp shows that nothing touched it
// since it was verified; without one it is read back (bounded, no links)
// and compared.
func (f *writtenFile) write(d *safefs.Dir, name string, content []byte, perm os.FileMode, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum := sha256.Sum256(content)
	if f.written != nil && *f.written == sum && f.holds(d, name, content, perm, now) {
		return nil
	}
	f.verified = nil
	if err := d.WriteFile(name, content, perm); err != nil {
		f.written = nil
		return err
	}
	f.written = &sum
	return nil
}

func (f *writtenFile) holds(d *safefs.Dir, name string, content []byte, perm os.FileMode, now time.Time) bool {
	before, err := d.Stamp(name)
	if err != nil {
		return false
	}
	if f.verified != nil && *f.verified == before {
		return true
	}
	data, mode, err := d.ReadFile(name, int64(len(content))+1)
	if err != nil || mode.Perm() != perm || !bytes.Equal(data, content) {
		return false
	}
	after, err := d.Stamp(name)
	if err != nil || after != before {
		return false
	}
	if after.Settled(now) {
		f.verified = &after
	}
	return true
}

func (d *podFiles) nodeEtcHosts() string {
	if d.NodeEtcHosts != "" {
		return d.NodeEtcHosts
	}
	return crispec.EtcHostsPath
}

// readNodeHosts reads the node's hosts file, at most maxNodeHostsBytes.
func readNodeHosts(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read the node's hosts file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxNodeHostsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the node's hosts file: %w", err)
	}
	if len(b) > maxNodeHostsBytes {
		return nil, fmt.Errorf("the node's hosts file %s is over %d bytes", p, maxNodeHostsBytes)
	}
	return b, nil
}
