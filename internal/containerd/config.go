// Package containerd runs and supervises the embedded containerd that knode
// starts when no --container-runtime-endpoint is given, in the way k3s does:
// one config, socket, root and state under knode's own root directory.
package containerd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Layout names the files of one embedded instance, all under Dir.
type Layout struct {
	Dir string
}

func (l Layout) Config() string     { return filepath.Join(l.Dir, "config.toml") }
func (l Layout) Socket() string     { return filepath.Join(l.Dir, "containerd.sock") }
func (l Layout) Root() string       { return filepath.Join(l.Dir, "root") }
func (l Layout) State() string      { return filepath.Join(l.Dir, "state") }
func (l Layout) CNIConfDir() string { return filepath.Join(l.Dir, "cni", "net.d") }
func (l Layout) CNIDataDir() string { return filepath.Join(l.Dir, "cni", "ipam") }
func (l Layout) LogFile() string    { return filepath.Join(l.Dir, "containerd.log") }
func (l Layout) PIDFile() string    { return filepath.Join(l.Dir, "containerd.pid") }
func (l Layout) CDIDir() string     { return filepath.Join(l.Dir, "cdi") }

// RegistryHostsDir is containerd's registry config_path: a
// <host[:port]>/hosts.toml below it sets a registry's CA, mirrors and
// capabilities, as /etc/containerd/certs.d does for a system containerd.
func (l Layout) RegistryHostsDir() string { return filepath.Join(l.Dir, "certs.d") }

// Endpoint is the CRI endpoint of the instance.
func (l Layout) Endpoint() string { return "unix://" + l.Socket() }

// Settings are the knobs of the generated configuration.
type Settings struct {
	SandboxImage string
	RuncBinary   string
	PodCIDR      string
	CNIBinDirs   []string
	// CDISpecDirs are searched for CDI specs, for device plugins that answer with CDI devices.
	CDISpecDirs []string
	// EnableRestore turns on containerd 2.1–2.3's restore of checkpoint
	// archives given as a container's image.
	EnableRestore bool
	// RuncHandlers are runtime handlers besides the default "runc", each
	// running another runc build (a RuntimeClass names one): e.g. a runc
	// that has the idmapped mounts user namespaces need, while the default
	// handler keeps the distribution's.
	RuncHandlers []RuncHandler
}

// RuncHandler is a CRI runtime handler that runs a runc binary.
type RuncHandler struct {
	// Name is the handler's name, a RuntimeClass's handler.
	Name string
	// Binary is the runc it runs.
	Binary string
}

// configFormat is containerd 2.x config version 3 with the settings these
// machines need (see docs): oom_score_adj lowered only where this host
// lets a process lower it (else containerd clamps the kubelet's -997 for
// Guaranteed pods to its own score rather than fail), cgroupfs, a private
// runc root, NRI off, netns under the state dir, a free streaming port.
// It is a fmt format, not a text/template: executing a template makes the
// linker keep every exported method of every type (reflective method
// calls), about 3 MiB of binary that stays resident (docs/benchmarks.md).
const configFormat = `version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = %[4]t
  netns_mounts_under_state_dir = true
  enable_experimental_restore_via_create = %[5]t
  cdi_spec_dirs = %[6]s
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %[7]q
        SystemdCgroup = false
        Root = %[8]q
%[13]s  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = %[9]s
    conf_dir = %[10]q

[plugins.'io.containerd.cri.v1.images']
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = %[11]q
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[12]q

[plugins.'io.containerd.nri.v1.nri']
  disable = true
`

// RenderConfig returns the containerd configuration for l and s.
func RenderConfig(l Layout, s Settings) ([]byte, error) {
	handlers, err := runcHandlers(l, s.RuncHandlers)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, configFormat,
		l.Root(), l.State(), l.Socket(),
		!canLowerOOMScore(), s.EnableRestore,
		tomlStrings(append([]string{l.CDIDir()}, s.CDISpecDirs...)),
		s.RuncBinary, filepath.Join(l.State(), "runc"),
		tomlStrings(s.CNIBinDirs), l.CNIConfDir(),
		l.RegistryHostsDir(), s.SandboxImage, handlers), nil
}

// runcHandlerFormat is one more runc runtime section; each handler has its
// own runc state root, as two runc versions need not read each other's.
const runcHandlerFormat = `    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%[1]s]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%[1]s.options]
        BinaryName = %[2]q
        SystemdCgroup = false
        Root = %[3]q
`

func runcHandlers(l Layout, hs []RuncHandler) (string, error) {
	var b strings.Builder
	for _, h := range hs {
		// A RuntimeClass's handler is a DNS label (the API server checks
		// it), which is a bare TOML key and a file name.
		if msgs := validation.IsDNS1123Label(h.Name); len(msgs) > 0 || h.Name == "runc" {
			return "", fmt.Errorf("runtime handler name %q: must be a DNS label other than runc: %s", h.Name, strings.Join(msgs, "; "))
		}
		fmt.Fprintf(&b, runcHandlerFormat, h.Name, h.Binary, filepath.Join(l.State(), "runc-"+h.Name))
	}
	return b.String(), nil
}

// tomlStrings renders a TOML array of strings; JSON string escaping is valid TOML.
func tomlStrings(ss []string) string {
	if ss == nil {
		ss = []string{}
	}
	b, _ := json.Marshal(ss)
	return string(b)
}

// BridgeName is a per-instance Linux bridge name (at most 15 bytes), so
// several embedded instances on one machine never share a bridge.
func BridgeName(l Layout) string {
	sum := sha256.Sum256([]byte(l.Dir))
	return "knode" + hex.EncodeToString(sum[:])[:8]
}

// RenderCNI returns a bridge + host-local conflist for the pod network.
// No masquerading and no gateway: knode adds no rules to the host's
// firewall and does not turn on forwarding. The host still reaches its pods:
// ensureBridge gives the bridge an address.
func RenderCNI(l Layout, podCIDR string) ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "knode",
		"plugins": []any{
			map[string]any{
				"type":      "bridge",
				"bridge":    BridgeName(l),
				"isGateway": false,
				"ipMasq":    false,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": podCIDR}}},
					"dataDir": l.CNIDataDir(),
				},
			},
		},
	}
	out, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render CNI config: %w", err)
	}
	return out, nil
}

// writeFiles writes the containerd config and, unless the operator placed
// their own, the CNI conflist.
func writeFiles(l Layout, s Settings) error {
	for _, dir := range []string{l.Dir, l.CNIConfDir(), l.CDIDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	// Searchable, not readable, by others, as containerd keeps its own
	// state dir: a pod in a user namespace runs as host IDs of its own,
	// and runc, already in that namespace, resolves the container's
	// rootfs beneath the state dir.
	if err := os.Chmod(l.Dir, 0o711); err != nil {
		return fmt.Errorf("make %s searchable: %w", l.Dir, err)
	}
	cfg, err := RenderConfig(l, s)
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.Config(), cfg, 0o600); err != nil {
		return fmt.Errorf("write containerd config: %w", err)
	}
	existing, _ := filepath.Glob(filepath.Join(l.CNIConfDir(), "*.conf*"))
	if len(existing) > 0 {
		return nil
	}
	cni, err := RenderCNI(l, s.PodCIDR)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.CNIConfDir(), knodeConflist), cni, 0o600); err != nil {
		return fmt.Errorf("write CNI config: %w", err)
	}
	return nil
}

// canLowerOOMScore reports whether this process may lower its
// oom_score_adj (CAP_SYS_RESOURCE, and a host that allows it): it lowers
// its own by one and puts it back, which is always allowed.
func canLowerOOMScore() bool {
	const file = "/proc/self/oom_score_adj"
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || cur <= -1000 {
		return false
	}
	if os.WriteFile(file, []byte(strconv.Itoa(cur-1)), 0o644) != nil {
		return false
	}
	_ = os.WriteFile(file, []byte(strconv.Itoa(cur)), 0o644)
	return true
}
