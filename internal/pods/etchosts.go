package pods

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/safefs"
)

// maxNodeHostsBytes bounds the node's hosts file a host-network pod gets a
// copy of; a bigger one is refused rather than read without end.
const maxNodeHostsBytes = 1 << 20

// writeEtcHosts writes the pod's managed hosts file, as the kubelet's
// ensureHostsFile does before each container is created (the pod IP is
// known only once the sandbox runs), beneath the opened pod directory:
// containers get it writable, so what is there may be anything a
// container left, and it is replaced, never written through.
func (d *podFiles) writeEtcHosts(pod *v1.Pod, podIP string) (string, error) {
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
	if err := pd.WriteFile(crispec.EtcHostsFile, content, 0o644); err != nil {
		return "", fmt.Errorf("managed /etc/hosts: %w", err)
	}
	return filepath.Join(podDir, crispec.EtcHostsFile), nil
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
