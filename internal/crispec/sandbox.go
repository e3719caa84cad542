package crispec

import (
	"fmt"
	"maps"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/qos"
)

// LogDir is the kubelet's per-pod log directory: <root>/<ns>_<name>_<uid>.
func LogDir(root string, pod *v1.Pod) string {
	return filepath.Join(root, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}

// Sandbox builds the CRI sandbox config the way the kubelet does. hostDNS
// is the node's resolv.conf as ParseResolvConf read it (nil: none is
// configured); DNS makes the pod's resolver configuration from it. A hostname the kubelet
// refuses (an invalid hostname or subdomain, an FQDN longer than the
// kernel takes) fails the sandbox as it does there.
func Sandbox(pod *v1.Pod, attempt uint32, node Node, hostDNS *runtimeapi.DNSConfig) (*runtimeapi.PodSandboxConfig, error) {
	labels := maps.Clone(pod.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelPodName] = pod.Name
	labels[LabelPodNamespace] = pod.Namespace
	labels[LabelPodUID] = string(pod.UID)
	labels[LabelManagedBy] = ManagedByValue
	labels[LabelNode] = node.NodeName
	annotations := maps.Clone(pod.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name:      pod.Name,
			Namespace: pod.Namespace,
			Uid:       string(pod.UID),
			Attempt:   attempt,
		},
		LogDirectory: LogDir(node.PodLogsDir, pod),
		Labels:       labels,
		Annotations:  annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    CgroupParent(node.CgroupRoot, pod),
			SecurityContext: sandboxSecurityContext(pod),
		},
	}
	// runc cannot set a host name without a private UTS namespace, and the
	// kubelet leaves it out for host-network pods too.
	if !pod.Spec.HostNetwork {
		hostname, domain, err := HostnameAndDomain(pod, node.ClusterDomain)
		if err != nil {
			return nil, err
		}
		if cfg.Hostname, err = KernelHostname(hostname, domain, pod.Spec.SetHostnameAsFQDN); err != nil {
			return nil, err
		}
	}
	if sc := pod.Spec.SecurityContext; sc != nil {
		for _, s := range sc.Sysctls {
			if cfg.Linux.Sysctls == nil {
				cfg.Linux.Sysctls = map[string]string{}
			}
			cfg.Linux.Sysctls[s.Name] = s.Value
		}
	}
	cfg.DnsConfig, _ = DNS(pod, hostDNS, node)
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			cfg.PortMappings = append(cfg.PortMappings, &runtimeapi.PortMapping{
				Protocol:      protocol(p.Protocol),
				ContainerPort: p.ContainerPort,
				HostPort:      p.HostPort,
				HostIp:        p.HostIP,
			})
		}
	}
	return cfg, nil
}

// CgroupParent is the pod's cgroup in the kubelet's hierarchy:
// <cgroup root>/kubepods[/burstable|/besteffort]/pod<uid>.
func CgroupParent(cgroupRoot string, pod *v1.Pod) string {
	return qos.PodCgroup(cgroupRoot, pod)
}

func namespaceOptions(pod *v1.Pod) *runtimeapi.NamespaceOption {
	opts := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	if pod.Spec.HostNetwork {
		opts.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		opts.Ipc = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		opts.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		opts.Pid = runtimeapi.NamespaceMode_POD
	}
	return opts
}

func podHasPrivileged(pod *v1.Pod) bool {
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
				return true
			}
		}
	}
	return false
}

func protocol(p v1.Protocol) runtimeapi.Protocol {
	switch p {
	case v1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case v1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	default:
		return runtimeapi.Protocol_TCP
	}
}

func int64Value(p *int64) *runtimeapi.Int64Value {
	if p == nil {
		return nil
	}
	return &runtimeapi.Int64Value{Value: *p}
}
