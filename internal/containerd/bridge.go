package containerd

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// knodeConflist is the name of the CNI config knode writes.
const knodeConflist = "10-knode.conflist"

// ensureBridge gives the pod network's bridge the subnet's first address, so
// the host reaches its pods directly (probes, the API server's proxy to
// pods) with no forwarding and no NAT: the address alone adds the connected
// route. host-local IPAM never hands that address to a pod. The bridge
// plugin would do it with isGateway, but that also turns on IP forwarding
// for the whole host. It does nothing when the operator brought their own
// CNI config.
func ensureBridge(l Layout, podCIDR string) error {
	if _, err := os.Stat(filepath.Join(l.CNIConfDir(), knodeConflist)); err != nil {
		return nil
	}
	prefix, err := netip.ParsePrefix(podCIDR)
	if err != nil {
		return fmt.Errorf("pod CIDR %q: %w", podCIDR, err)
	}
	gateway := prefix.Masked().Addr().Next()
	name := BridgeName(l)
	if _, err := os.Stat(filepath.Join("/sys/class/net", name)); err != nil {
		if err := ip("link", "add", "name", name, "type", "bridge"); err != nil && !strings.Contains(err.Error(), "File exists") {
			return err
		}
	}
	if err := ip("addr", "replace", fmt.Sprintf("%s/%d", gateway, prefix.Bits()), "dev", name); err != nil {
		return err
	}
	return ip("link", "set", name, "up")
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
