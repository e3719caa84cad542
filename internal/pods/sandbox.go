package pods

import (
	"fmt"
	"os"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/crispec"
)

// LogDir is the kubelet's per-pod log directory: <root>/<ns>_<name>_<uid>.
func LogDir(root string, pod *v1.Pod) string { return crispec.LogDir(root, pod) }

// sandboxConfig builds the pod's CRI sandbox config with the host's
// resolv.conf as it is now.
func (d *podFiles) sandboxConfig(pod *v1.Pod, attempt uint32) (*runtimeapi.PodSandboxConfig, error) {
	var hostDNS *runtimeapi.DNSConfig
	if d.ResolvConf != "" {
		var err error
		if hostDNS, err = readResolvConf(d.ResolvConf); err != nil {
			return nil, err
		}
	}
	return crispec.Sandbox(pod, attempt, d.node, hostDNS)
}

// readResolvConf reads the host's resolv.conf; a missing one is empty.
func readResolvConf(path string) (*runtimeapi.DNSConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return &runtimeapi.DNSConfig{}, nil
		}
		return nil, fmt.Errorf("read resolv.conf: %w", err)
	}
	defer f.Close()
	return crispec.ParseResolvConf(f)
}
