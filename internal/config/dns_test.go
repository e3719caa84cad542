package config

import (
	"slices"
	"testing"
)

// TestDNSSettings: --cluster-dns and --resolv-conf, and the file's
// clusterDNS and resolvConf (set to "" it means no resolv.conf), with the
// kubelet's precedence (a flag the operator set wins over the file), and
// a cluster DNS that is no IP address refused.
func TestDNSSettings(t *testing.T) {
	file := standalone + "authentication:\n" + standaloneAuthn + "clusterDNS: [10.96.0.10, fd00::a]\nresolvConf: \"\"\n"
	for _, tt := range []struct {
		name       string
		file       string
		args       []string
		wantDNS    []string
		wantResolv string
	}{
		{name: "defaults", wantResolv: "/etc/resolv.conf"},
		{name: "flags", args: []string{"--cluster-dns", "10.0.0.10,10.0.0.11", "--resolv-conf", "/run/resolv.conf"},
			wantDNS: []string{"10.0.0.10", "10.0.0.11"}, wantResolv: "/run/resolv.conf"},
		{name: "file", file: file, wantDNS: []string{"10.96.0.10", "fd00::a"}, wantResolv: ""},
		{name: "flags win over the file", file: file, args: []string{"--cluster-dns", "10.0.0.10", "--resolv-conf", "/r"},
			wantDNS: []string{"10.0.0.10"}, wantResolv: "/r"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := load(t, tt.file, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.ClusterDNS, tt.wantDNS) || c.ResolvConf != tt.wantResolv {
				t.Errorf("clusterDNS %q resolvConf %q, want %q %q", c.ClusterDNS, c.ResolvConf, tt.wantDNS, tt.wantResolv)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("validate: %v", err)
			}
			if kc := c.KubeletConfiguration(""); !slices.Equal(kc.ClusterDNS, tt.wantDNS) || kc.ResolverConfig == nil || *kc.ResolverConfig != tt.wantResolv {
				t.Errorf("/configz: clusterDNS %q resolvConf %v", kc.ClusterDNS, kc.ResolverConfig)
			}
		})
	}
	if _, _, err := load(t, "", "--cluster-dns", "kube-dns"); err == nil || err.Error() != `--cluster-dns: "kube-dns" is not an IP address` {
		t.Errorf("a cluster DNS that is no IP: %v", err)
	}
}
