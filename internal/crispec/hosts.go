package crispec

import (
	"bytes"
	"fmt"
	"net"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// EtcHostsPath is where the kubelet mounts its managed hosts file, and
// the node's own hosts file a host-network pod gets a copy of.
const EtcHostsPath = "/etc/hosts"

// EtcHostsFile is the managed hosts file's name in the pod directory
// (<root-dir>/pods/<uid>/etc-hosts), as the kubelet names it.
const EtcHostsFile = "etc-hosts"

const (
	managedHostsHeader                = "# Kubernetes-managed hosts file.\n"
	managedHostsHeaderWithHostNetwork = "# Kubernetes-managed hosts file (host network).\n"
)

// HostnameAndDomain is the kubelet's GeneratePodHostNameAndDomain: the
// pod's hostname (spec.hostname or the pod name, cut to 63 bytes without
// a trailing '-' or '.') and, with a subdomain, its domain
// <subdomain>.<namespace>.svc.<clusterDomain>. An invalid hostname or
// subdomain is refused with the kubelet's message.
func HostnameAndDomain(pod *v1.Pod, clusterDomain string) (hostname, domain string, err error) {
	hostname = pod.Name
	if pod.Spec.Hostname != "" {
		if msgs := validation.IsDNS1123Label(pod.Spec.Hostname); len(msgs) != 0 {
			return "", "", fmt.Errorf("pod Hostname %q is not a valid DNS label: %s", pod.Spec.Hostname, strings.Join(msgs, ";"))
		}
		hostname = pod.Spec.Hostname
	}
	// A host name is at most 63 bytes (64 with the kernel's terminating NUL).
	if len(hostname) > 63 {
		hostname = strings.TrimRight(hostname[:63], "-.")
		if hostname == "" {
			return "", "", fmt.Errorf("hostname for pod %q was invalid: %q", pod.Name, pod.Spec.Hostname)
		}
	}
	if pod.Spec.Subdomain != "" {
		if msgs := validation.IsDNS1123Label(pod.Spec.Subdomain); len(msgs) != 0 {
			return "", "", fmt.Errorf("pod Subdomain %q is not a valid DNS label: %s", pod.Spec.Subdomain, strings.Join(msgs, ";"))
		}
		domain = fmt.Sprintf("%s.%s.svc.%s", pod.Spec.Subdomain, pod.Namespace, clusterDomain)
	}
	return hostname, domain, nil
}

// KernelHostname is the kubelet's GetNodenameForKernel: the host name the
// sandbox gets, the FQDN when setHostnameAsFQDN is set and there is a
// domain. The kernel's nodename holds 64 bytes; a longer FQDN is refused
// with the kubelet's message rather than cut.
func KernelHostname(hostname, domain string, setHostnameAsFQDN *bool) (string, error) {
	const fqdnMaxLen = 64
	if domain == "" || setHostnameAsFQDN == nil || !*setHostnameAsFQDN {
		return hostname, nil
	}
	fqdn := hostname + "." + domain
	if len(fqdn) > fqdnMaxLen {
		return "", fmt.Errorf("failed to construct FQDN from pod hostname and cluster domain, FQDN %s is too long (%d characters is the max, %d characters requested)", fqdn, fqdnMaxLen, len(fqdn))
	}
	return fqdn, nil
}

// MountsEtcHosts reports whether the kubelet gives c its managed hosts
// file: every container of a pod with an IP (a host-network pod has the
// node's), except one that mounts a volume at /etc/hosts itself.
func MountsEtcHosts(pod *v1.Pod, c *v1.Container, podIP string) bool {
	if podIP == "" && !pod.Spec.HostNetwork {
		return false
	}
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == EtcHostsPath {
			return false
		}
	}
	return true
}

// EtcHostsMount is the CRI mount of the managed hosts file at hostPath:
// writable, as the kubelet mounts it (a container's edits last until the
// next container of the pod is created, which rewrites the file).
func EtcHostsMount(hostPath string) *runtimeapi.Mount {
	return &runtimeapi.Mount{ContainerPath: EtcHostsPath, HostPath: hostPath}
}

// HostsFile is the content of the pod's managed hosts file. A pod on the
// pod network gets the kubelet's managedHostsFileContent: the header, the
// localhost lines, one line per pod IP with its hostname (and FQDN when
// it has a subdomain), then the hostAliases. A host-network pod gets the
// node's hosts file (nodeHosts) under its own header, then the
// hostAliases.
func HostsFile(pod *v1.Pod, podIPs []string, clusterDomain string, nodeHosts []byte) ([]byte, error) {
	var b bytes.Buffer
	if pod.Spec.HostNetwork {
		if err := checkHostAliases(pod.Spec.HostAliases); err != nil {
			return nil, err
		}
		b.WriteString(managedHostsHeaderWithHostNetwork)
		b.Write(nodeHosts)
		writeHostAliases(&b, pod.Spec.HostAliases)
		return b.Bytes(), nil
	}
	hostname, domain, err := HostnameAndDomain(pod, clusterDomain)
	if err != nil {
		return nil, err
	}
	if err := checkHostAliases(pod.Spec.HostAliases); err != nil {
		return nil, err
	}
	b.WriteString(managedHostsHeader)
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range podIPs {
		if domain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", ip, hostname, domain, hostname)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
		}
	}
	writeHostAliases(&b, pod.Spec.HostAliases)
	return b.Bytes(), nil
}

// writeHostAliases is the kubelet's hostsEntriesFromHostAliases: a blank
// line, a comment, then one line per alias IP with its names tab-separated.
func writeHostAliases(b *bytes.Buffer, aliases []v1.HostAlias) {
	if len(aliases) == 0 {
		return
	}
	b.WriteString("\n# Entries added by HostAliases.\n")
	for _, a := range aliases {
		fmt.Fprintf(b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
	}
}

// checkHostAliases applies the API server's hostAliases validation, which
// a static pod has not been through: a line the pod writes into its own
// hosts file holds one IP and host names, nothing else.
func checkHostAliases(aliases []v1.HostAlias) error {
	for i, a := range aliases {
		if net.ParseIP(a.IP) == nil {
			return fmt.Errorf("hostAliases[%d].ip: invalid IP address %q", i, a.IP)
		}
		for j, h := range a.Hostnames {
			if msgs := validation.IsDNS1123Subdomain(h); len(msgs) != 0 {
				return fmt.Errorf("hostAliases[%d].hostnames[%d]: %q: %s", i, j, h, strings.Join(msgs, ";"))
			}
		}
	}
	return nil
}
