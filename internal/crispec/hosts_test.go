package crispec

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

const localhostLines = "# Kubernetes-managed hosts file.\n" +
	"127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\n" +
	"fe00::0\tip6-mcastprefix\n" +
	"fe00::1\tip6-allnodes\n" +
	"fe00::2\tip6-allrouters\n"

// The kubelet's managedHostsFileContent / nodeHostsFileContent, byte for byte.
func TestHostsFile(t *testing.T) {
	aliases := []v1.HostAlias{{IP: "123.45.67.89", Hostnames: []string{"foo", "bar.baz"}}, {IP: "::2", Hostnames: []string{"six"}}}
	for _, tt := range []struct {
		name    string
		edit    func(*v1.Pod)
		ips     []string
		domain  string
		want    string
		wantErr string
	}{
		{name: "pod name", ips: []string{"10.88.0.5"},
			want: localhostLines + "10.88.0.5\tweb-n1\n"},
		{name: "hostname and every pod IP", edit: func(p *v1.Pod) { p.Spec.Hostname = "db" }, ips: []string{"10.88.0.5", "fd00::5"},
			want: localhostLines + "10.88.0.5\tdb\nfd00::5\tdb\n"},
		{name: "subdomain: FQDN then hostname", edit: func(p *v1.Pod) { p.Spec.Hostname = "db"; p.Spec.Subdomain = "sub" }, ips: []string{"10.88.0.5"}, domain: "cluster.local",
			want: localhostLines + "10.88.0.5\tdb.sub.prod.svc.cluster.local\tdb\n"},
		{name: "subdomain with the kubelet's empty default cluster domain", edit: func(p *v1.Pod) { p.Spec.Subdomain = "sub" }, ips: []string{"10.88.0.5"},
			want: localhostLines + "10.88.0.5\tweb-n1.sub.prod.svc.\tweb-n1\n"},
		{name: "host aliases", edit: func(p *v1.Pod) { p.Spec.HostAliases = aliases }, ips: []string{"10.88.0.5"},
			want: localhostLines + "10.88.0.5\tweb-n1\n\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar.baz\n::2\tsix\n"},
		{name: "host network: the node's file and the aliases", edit: func(p *v1.Pod) { p.Spec.HostNetwork = true; p.Spec.HostAliases = aliases[:1] }, ips: []string{"192.0.2.10"},
			want: "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost node\n\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar.baz\n"},
		{name: "host network without aliases", edit: func(p *v1.Pod) { p.Spec.HostNetwork = true },
			want: "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost node\n"},
		{name: "an alias IP that is none is refused", edit: func(p *v1.Pod) { p.Spec.HostAliases = []v1.HostAlias{{IP: "1.2.3", Hostnames: []string{"a"}}} }, ips: []string{"10.88.0.5"},
			wantErr: "invalid IP address"},
		{name: "an alias name with a newline is refused", edit: func(p *v1.Pod) {
			p.Spec.HostAliases = []v1.HostAlias{{IP: "1.2.3.4", Hostnames: []string{"a\n5.6.7.8 b"}}}
		}, ips: []string{"10.88.0.5"}, wantErr: "hostAliases[0].hostnames[0]"},
		{name: "an invalid hostname is refused with the kubelet's message", edit: func(p *v1.Pod) { p.Spec.Hostname = "Bad_Name" }, ips: []string{"10.88.0.5"},
			wantErr: `pod Hostname "Bad_Name" is not a valid DNS label`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			if tt.edit != nil {
				tt.edit(pod)
			}
			got, err := HostsFile(pod, tt.ips, tt.domain, []byte("127.0.0.1 localhost node\n"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestSandboxHostname(t *testing.T) {
	yes, no := true, false
	n := node
	n.ClusterDomain = "cluster.local"
	for _, tt := range []struct {
		name    string
		edit    func(*v1.Pod)
		want    string
		wantErr string
	}{
		{name: "hostname", edit: func(p *v1.Pod) { p.Spec.Hostname = "db"; p.Spec.Subdomain = "sub" }, want: "db"},
		{name: "setHostnameAsFQDN false", edit: func(p *v1.Pod) { p.Spec.Subdomain = "sub"; p.Spec.SetHostnameAsFQDN = &no }, want: "web-n1"},
		{name: "setHostnameAsFQDN without subdomain", edit: func(p *v1.Pod) { p.Spec.SetHostnameAsFQDN = &yes }, want: "web-n1"},
		{name: "setHostnameAsFQDN", edit: func(p *v1.Pod) { p.Spec.Subdomain = "sub"; p.Spec.SetHostnameAsFQDN = &yes }, want: "web-n1.sub.prod.svc.cluster.local"},
		{name: "an FQDN over 64 bytes is refused", edit: func(p *v1.Pod) {
			p.Spec.Hostname = strings.Repeat("h", 40)
			p.Spec.Subdomain = "sub"
			p.Spec.SetHostnameAsFQDN = &yes
		}, wantErr: "is too long (64 characters is the max, 67 characters requested)"},
		{name: "an invalid subdomain is refused", edit: func(p *v1.Pod) { p.Spec.Subdomain = "a.b" }, wantErr: `pod Subdomain "a.b" is not a valid DNS label`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			tt.edit(pod)
			cfg, err := Sandbox(pod, 0, n, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Hostname != tt.want {
				t.Errorf("hostname %q, want %q", cfg.Hostname, tt.want)
			}
		})
	}
}

func TestMountsEtcHosts(t *testing.T) {
	pod := basePod()
	c := &v1.Container{Name: "app"}
	if MountsEtcHosts(pod, c, "") {
		t.Error("a pod-network pod without an IP got /etc/hosts")
	}
	if !MountsEtcHosts(pod, c, "10.88.0.5") {
		t.Error("a pod with an IP did not get /etc/hosts")
	}
	pod.Spec.HostNetwork = true
	if !MountsEtcHosts(pod, c, "") {
		t.Error("a host-network pod did not get /etc/hosts")
	}
	c.VolumeMounts = []v1.VolumeMount{{Name: "h", MountPath: "/etc/hosts"}}
	if MountsEtcHosts(pod, c, "10.88.0.5") {
		t.Error("a container that mounts /etc/hosts itself got the managed one")
	}
}
