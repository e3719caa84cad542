package integration

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// stdoutText is what the pod's container wrote to stdout, rebuilt from its
// CRI log lines ("<time> stdout F <text>").
func (n *node) stdoutText(namespace, pod, container string) string {
	var b strings.Builder
	for _, line := range strings.Split(n.logFile(namespace, pod, container), "\n") {
		parts := strings.SplitN(line, " ", 4)
		if len(parts) < 3 || parts[1] != "stdout" {
			continue
		}
		if len(parts) == 4 {
			b.WriteString(parts[3])
		}
		if parts[2] == "F" {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// waitReport waits for the container's "end" line and returns what it
// printed before it.
func (n *node) waitReport(namespace, pod, container string) string {
	n.t.Helper()
	var out string
	n.eventually(60*time.Second, pod+" printing its report", func() bool {
		out = n.stdoutText(namespace, pod, container)
		return strings.Contains(out, "\nend\n")
	})
	return out[:strings.Index(out, "\nend\n")+1]
}

// sandboxIP is the pod's IP as the runtime reports it.
func (n *node) sandboxIP(namespace, pod string) string {
	n.t.Helper()
	sbs := n.sandboxes(namespace, pod)
	if len(sbs) != 1 {
		n.t.Fatalf("want one sandbox of %s, got %d", pod, len(sbs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := n.cri.PodSandboxStatus(ctx, sbs[0].Id, false)
	if err != nil {
		n.t.Fatalf("sandbox status: %v", err)
	}
	return resp.GetStatus().GetNetwork().GetIp()
}

const report = `cat /etc/hosts; echo "hostname=$(hostname)"; echo end; exec sleep 3600`

// A pod-network pod's containers see the kubelet's managed /etc/hosts: the
// localhost lines, the pod IP with its FQDN and hostname, the hostAliases;
// with setHostnameAsFQDN the kernel host name is the FQDN. A container that
// mounts its own /etc/hosts keeps it.
func TestPodEtcHostsIsKubeletManaged(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("hosts.yaml", `apiVersion: v1
kind: Pod
metadata: {name: hosts}
spec:
  terminationGracePeriodSeconds: 1
  hostname: web
  subdomain: sub
  setHostnameAsFQDN: true
  hostAliases:
  - ip: 123.45.67.89
    hostnames: [foo.local, bar.local]
  - ip: 10.1.2.3
    hostnames: [baz]
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", '`+report+`']
  - name: own
    image: `+busybox+`
    command: ["sh", "-c", '`+report+`']
    volumeMounts: [{name: mine, mountPath: /etc/hosts, subPath: hosts}]
  initContainers:
  - name: prep
    image: `+busybox+`
    command: ["sh", "-c", "echo '192.0.2.1 mine' > /v/hosts"]
    volumeMounts: [{name: mine, mountPath: /v}]
  volumes:
  - {name: mine, emptyDir: {}}
`)
	n.startKnode("--cluster-domain", "cluster.local")
	got := n.waitReport("default", "hosts", "main")
	ip := n.sandboxIP("default", "hosts")
	if ip == "" {
		t.Fatal("the pod has no IP")
	}
	fqdn := "web.sub.default.svc.cluster.local"
	want := "# Kubernetes-managed hosts file.\n" +
		"127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\n" +
		"fe00::0\tip6-mcastprefix\n" +
		"fe00::1\tip6-allnodes\n" +
		"fe00::2\tip6-allrouters\n" +
		ip + "\t" + fqdn + "\tweb\n" +
		"\n# Entries added by HostAliases.\n" +
		"123.45.67.89\tfoo.local\tbar.local\n" +
		"10.1.2.3\tbaz\n" +
		"hostname=" + fqdn + "\n"
	if got != want {
		t.Errorf("inside the container:\n%s\nwant:\n%s", got, want)
	}
	if own := n.waitReport("default", "hosts", "own"); own != "192.0.2.1 mine\nhostname="+fqdn+"\n" {
		t.Errorf("a container mounting its own /etc/hosts saw:\n%s", own)
	}
}

// A host-network pod gets a copy of the node's /etc/hosts under the
// kubelet's host-network header, then its hostAliases.
func TestHostNetworkPodEtcHostsIsTheNodes(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("hosts.yaml", `apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  terminationGracePeriodSeconds: 1
  hostNetwork: true
  hostAliases:
  - ip: 123.45.67.89
    hostnames: [foo.local]
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", '`+report+`']
`)
	n.startKnode()
	got := n.waitReport("default", "hostnet", "main")
	node, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	want := "# Kubernetes-managed hosts file (host network).\n" + string(node) +
		"\n# Entries added by HostAliases.\n123.45.67.89\tfoo.local\n" +
		"hostname=" + host + "\n"
	if got != want {
		t.Errorf("inside the container:\n%s\nwant:\n%s", got, want)
	}
}
