// Package config turns knode's command line and an optional KubeletConfiguration
// file into the one Config the rest of the agent reads.
//
// As in the kubelet, the file is read first and every flag the operator set
// explicitly overrides the file. Fields of KubeletConfiguration that knode does
// not implement are returned as warnings, never silently dropped.
package config

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Defaults shared with the kubelet where the concept is the same.
const (
	DefaultRootDir                = "/var/lib/kubelet"
	DefaultPort                   = 10250
	DefaultRuntimeRequestTimeout  = 2 * time.Minute
	DefaultPodLogsDir             = "/var/log/pods"
	DefaultFileCheckFrequency     = 20 * time.Second
	DefaultSyncFrequency          = time.Minute
	DefaultCgroupRoot             = "/"
	DefaultPodInfraContainerImage = "registry.k8s.io/pause:3.10"
	DefaultPodCIDR                = "10.88.0.0/16"
	// DefaultResolvConf is the kubelet's --resolv-conf default.
	DefaultResolvConf        = "/etc/resolv.conf"
	DefaultAuthorizationMode = "AlwaysAllow"
)

// Config is knode's effective configuration after the file and flags are merged.
type Config struct {
	// ConfigFile is the KubeletConfiguration file read ("": none).
	ConfigFile               string
	RootDir                  string
	PodManifestPath          string
	ContainerRuntimeEndpoint string
	NodeName                 string
	Address                  string
	Port                     int32
	ReadOnlyPort             int32
	TLSCertFile              string
	TLSPrivateKeyFile        string
	ClientCAFile             string
	AnonymousAuth            bool
	// AuthenticationTokenWebhook checks bearer tokens with TokenReview (cluster mode).
	AuthenticationTokenWebhook bool
	AuthorizationMode          string
	FeatureGates               *FeatureGates
	// featureGates are the gates the file and flags set, merged.
	featureGates          map[string]bool
	RuntimeRequestTimeout time.Duration
	PodLogsDir            string
	FileCheckFrequency    time.Duration
	SyncFrequency         time.Duration
	// ContainerLogMaxSize (bytes) and ContainerLogMaxFiles bound each
	// container's logs, as the kubelet's fields of the same names.
	ContainerLogMaxSize  int64
	ContainerLogMaxFiles int
	// Image garbage collection, as the kubelet's imageGC* fields.
	ImageGCHighThreshold int
	ImageGCLowThreshold  int
	ImageMinimumGCAge    time.Duration
	ImageGCPeriod        time.Duration
	// EvictionHard is the kubelet's evictionHard: signal → quantity or percentage.
	EvictionHard map[string]string
	CgroupRoot   string
	CgroupDriver string
	// KubeReserved and SystemReserved are held back from the node's
	// allocatable (resource name → quantity), as the kubelet's fields.
	KubeReserved, SystemReserved map[string]string
	// EnforceNodeAllocatable is where allocatable is enforced: "pods" (the
	// kubepods cgroup) or "none"; nil means the kubelet's default, pods.
	EnforceNodeAllocatable []string
	// MaxPods is the kubelet's maxPods: the node's pods capacity, enforced
	// at admission (OutOfpods).
	MaxPods int32
	// UserNamespacesIDsPerPod is the kubelet's userNamespaces.idsPerPod:
	// the host IDs each hostUsers false pod gets (0: 65536).
	UserNamespacesIDsPerPod int64
	PodCIDR                 string
	// ResolvConf is the node's resolv.conf for the pods' DNS ("": none).
	ResolvConf string
	// ClusterDNS are the cluster's DNS servers for ClusterFirst pods.
	ClusterDNS []string
	// ClusterDomain is the kubelet's clusterDomain: the domain of a pod's
	// FQDN in its /etc/hosts and, with setHostnameAsFQDN, its host name.
	ClusterDomain          string
	PodInfraContainerImage string
	// Checkpoint API limits (knode's own; the kubelet has none).
	MaxParallelCheckpoints    int
	CheckpointMaxPerContainer int
	CheckpointMaxAge          time.Duration
	CheckpointMaxTotalBytes   int64
	// NodeIP is the address the node reports (the kubelet's --node-ip); empty: detected.
	NodeIP string
	// Kubeconfig joins a cluster as a node when set; NodeLabels are added to the Node.
	Kubeconfig string
	NodeLabels map[string]string
	// Peer credentials: how this node authenticates to other nodes' APIs
	// when it pulls an archive for a migration.
	PeerClientCertificate, PeerClientKey, PeerCertificateAuthority string
	// RestoreDirs hold checkpoint archives that pods may be restored from,
	// besides <root-dir>/checkpoints and <root-dir>/restore.
	RestoreDirs []string
	// RestoreAcrossNamespaces lets a pod restore an archive taken in another
	// namespace; off, an archive is restored only in its own namespace.
	RestoreAcrossNamespaces bool
	// RestorePeers are the nodes POST /restores may pull archives from
	// (host, host:port or CIDR), besides the cluster's Node objects.
	RestorePeers []string
	// ContainerLogsDir gets the kubelet's log symlinks; empty disables them.
	ContainerLogsDir string
	// Device plugins (knode's own knobs; the kubelet's values are the defaults).
	DevicePluginGracePeriod time.Duration
	DevicePluginCallTimeout time.Duration
	// SeccompDefault is the kubelet's seccompDefault: containers without a
	// seccomp profile get the runtime's default instead of none.
	SeccompDefault bool
	// AllowedUnsafeSysctls are the kubelet's allowedUnsafeSysctls: sysctls
	// (or prefixes ending in "*") pods may set besides the safe set.
	AllowedUnsafeSysctls []string
	// PreloadImagesDir holds OCI/Docker image archives that knode imports into
	// its embedded containerd at start, for nodes without a registry.
	PreloadImagesDir string
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	if c.RootDir == "" {
		return fmt.Errorf("--root-dir must not be empty")
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("--port %d is out of range 0-65535", c.Port)
	}
	if c.ReadOnlyPort < 0 || c.ReadOnlyPort > 65535 {
		return fmt.Errorf("--read-only-port %d is out of range 0-65535", c.ReadOnlyPort)
	}
	if c.RuntimeRequestTimeout <= 0 {
		return fmt.Errorf("--runtime-request-timeout must be positive, got %s", c.RuntimeRequestTimeout)
	}
	for _, ip := range c.ClusterDNS {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("--cluster-dns: %q is not an IP address", ip)
		}
	}
	if c.SyncFrequency <= 0 {
		return fmt.Errorf("--sync-frequency must be positive, got %s", c.SyncFrequency)
	}
	if c.ContainerLogMaxSize <= 0 {
		return fmt.Errorf("--container-log-max-size must be positive, got %d bytes", c.ContainerLogMaxSize)
	}
	if c.ContainerLogMaxFiles < 2 {
		return fmt.Errorf("--container-log-max-files must be at least 2, got %d", c.ContainerLogMaxFiles)
	}
	switch c.AuthorizationMode {
	case "AlwaysAllow":
	case "Webhook":
		if c.Kubeconfig == "" {
			return fmt.Errorf("--authorization-mode=Webhook asks the API server (SubjectAccessReview): it needs --kubeconfig")
		}
	default:
		return fmt.Errorf("--authorization-mode %q is not supported: use AlwaysAllow or Webhook", c.AuthorizationMode)
	}
	for name, m := range map[string]map[string]string{"--kube-reserved": c.KubeReserved, "--system-reserved": c.SystemReserved} {
		if err := checkReserved(m); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	for _, e := range c.EnforceNodeAllocatable {
		switch e {
		case "pods", "none":
		case "system-reserved", "kube-reserved", "system-reserved-compressible", "kube-reserved-compressible":
			return fmt.Errorf("--enforce-node-allocatable=%s is not supported: knode does not manage the system-reserved and kube-reserved cgroups; use pods or none", e)
		default:
			return fmt.Errorf("--enforce-node-allocatable: unknown value %q: want pods or none", e)
		}
	}
	if c.MaxPods < 1 {
		return fmt.Errorf("--max-pods must be at least 1, got %d", c.MaxPods)
	}
	if c.CgroupDriver != "" && c.CgroupDriver != "cgroupfs" {
		return fmt.Errorf("cgroupDriver %q is not supported: knode uses cgroupfs", c.CgroupDriver)
	}
	if c.AuthenticationTokenWebhook && c.Kubeconfig == "" {
		return fmt.Errorf("--authentication-token-webhook asks the API server (TokenReview): it needs --kubeconfig")
	}
	if c.MaxParallelCheckpoints < 1 {
		return fmt.Errorf("--max-parallel-checkpoints must be at least 1")
	}
	if c.CheckpointMaxPerContainer < 0 || c.CheckpointMaxAge < 0 || c.CheckpointMaxTotalBytes < 0 {
		return fmt.Errorf("checkpoint retention limits must not be negative (0 turns a limit off)")
	}
	if c.NodeName == "" {
		return fmt.Errorf("node name is empty: set --hostname-override")
	}
	return nil
}

// nodeName applies the kubelet's rule: the override or the host name, lower-cased.
func nodeName(override string) (string, error) {
	name := strings.TrimSpace(override)
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("read host name: %w", err)
		}
		name = h
	}
	return strings.ToLower(name), nil
}

// checkReserved accepts the kubelet's reservable resources with quantities.
func checkReserved(m map[string]string) error {
	for name, value := range m {
		if name == "pid" {
			// The kubelet limits the pods' process IDs by it (pids.max of
			// kubepods); knode sets no pids limit, so it is refused rather
			// than taken and dropped.
			return fmt.Errorf("resource %q cannot be reserved: knode does not limit the pods' process IDs (the kubepods cgroup's pids.max)", name)
		}
		if name != "cpu" && name != "memory" && name != "ephemeral-storage" && !strings.HasPrefix(name, "hugepages-") {
			return fmt.Errorf("resource %q cannot be reserved: want cpu, memory, ephemeral-storage or hugepages-<size>", name)
		}
		q, err := resource.ParseQuantity(value)
		if err != nil || q.Sign() < 0 {
			return fmt.Errorf("%s=%s: want a non-negative quantity", name, value)
		}
	}
	return nil
}

// EnforcePods reports whether the kubepods cgroup is limited to the node's
// allocatable (the kubelet's default) rather than its capacity.
func (c *Config) EnforcePods() bool {
	if c.EnforceNodeAllocatable == nil {
		return true
	}
	for _, e := range c.EnforceNodeAllocatable {
		if e == "pods" {
			return true
		}
	}
	return false
}
