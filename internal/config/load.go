package config

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	cliflag "k8s.io/component-base/cli/flag"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"
)

// Flags holds the command-line values before they are merged with the file.
type Flags struct {
	ConfigFile                string
	RootDir                   string
	PodManifestPath           string
	ContainerRuntimeEndpoint  string
	HostnameOverride          string
	Address                   string
	Port                      int32
	ReadOnlyPort              int32
	TLSCertFile               string
	TLSPrivateKeyFile         string
	ClientCAFile              string
	AnonymousAuth             bool
	TokenWebhook              bool
	AuthorizationMode         string
	FeatureGates              map[string]bool
	RuntimeRequestTimeout     time.Duration
	SyncFrequency             time.Duration
	ContainerLogMaxSize       string
	EvictionHard              string
	ImageGCHighThreshold      int32
	ImageGCLowThreshold       int32
	ImageMinimumGCAge         time.Duration
	ImageGCPeriod             time.Duration
	ContainerLogMaxFiles      int32
	PodLogsDir                string
	CgroupRoot                string
	PodCIDR                   string
	PodInfraContainerImage    string
	PreloadImagesDir          string
	MaxParallelCheckpoints    int
	CheckpointMaxPerContainer int
	CheckpointMaxAge          time.Duration
	CheckpointMaxTotalBytes   string
	DevicePluginGracePeriod   time.Duration
	DevicePluginCallTimeout   time.Duration
	ContainerLogsDir          string
	RestoreDirs               []string
	RestoreAcrossNamespaces   bool
	RestorePeers              []string
	PeerClientCertificate     string
	PeerClientKey             string
	PeerCertificateAuthority  string
	Kubeconfig                string
	NodeLabels                map[string]string
	NodeIP                    string
}

// AddFlags registers the kubelet's flag names (where knode has the concept)
// and knode's own on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.ConfigFile, "config", "", "KubeletConfiguration (kubelet.config.k8s.io/v1beta1) file; flags override it")
	fs.StringVar(&f.RootDir, "root-dir", DefaultRootDir, "Directory for knode's files (checkpoints, device plugins, pod volumes, embedded runtime)")
	fs.StringVar(&f.PodManifestPath, "pod-manifest-path", "", "Directory of static pod manifests (YAML or JSON), watched for changes")
	fs.StringVar(&f.ContainerRuntimeEndpoint, "container-runtime-endpoint", "", "CRI endpoint, e.g. unix:///run/containerd/containerd.sock; empty starts an embedded containerd")
	fs.StringVar(&f.HostnameOverride, "hostname-override", "", "Node name to use instead of the host name")
	fs.StringVar(&f.Address, "address", "0.0.0.0", "IP address to serve the HTTPS API on")
	fs.Int32Var(&f.Port, "port", DefaultPort, "Port of the HTTPS API")
	fs.Int32Var(&f.ReadOnlyPort, "read-only-port", 0, "Port of the plain-HTTP read-only API (0 = off)")
	fs.StringVar(&f.TLSCertFile, "tls-cert-file", "", "Serving certificate; without it one is generated under <root-dir>/pki")
	fs.StringVar(&f.TLSPrivateKeyFile, "tls-private-key-file", "", "Private key of --tls-cert-file")
	fs.StringVar(&f.ClientCAFile, "client-ca-file", "", "CA bundle that signs accepted client certificates")
	fs.BoolVar(&f.AnonymousAuth, "anonymous-auth", false, "Serve unauthenticated requests as system:anonymous")
	fs.BoolVar(&f.TokenWebhook, "authentication-token-webhook", false, "Authenticate bearer tokens with the API server's TokenReview (cluster mode)")
	fs.StringVar(&f.AuthorizationMode, "authorization-mode", DefaultAuthorizationMode, "AlwaysAllow or Webhook")
	fs.Var(cliflag.NewMapStringBool(&f.FeatureGates), "feature-gates", "key=value pairs of feature gates; known: "+strings.Join(KnownGates(), ", "))
	fs.DurationVar(&f.RuntimeRequestTimeout, "runtime-request-timeout", DefaultRuntimeRequestTimeout, "Deadline of CRI requests (long-running ones excepted)")
	fs.Int32Var(&f.ImageGCHighThreshold, "image-gc-high-threshold", 85, "Percent of the image filesystem in use above which unused images are removed (100 disables)")
	fs.Int32Var(&f.ImageGCLowThreshold, "image-gc-low-threshold", 80, "Percent of the image filesystem in use that image garbage collection brings usage down to")
	fs.DurationVar(&f.ImageMinimumGCAge, "minimum-image-ttl-duration", 2*time.Minute, "Minimum age of an unused image before it may be removed")
	fs.DurationVar(&f.ImageGCPeriod, "image-gc-period", 5*time.Minute, "How often image filesystem usage is checked")
	fs.StringVar(&f.EvictionHard, "eviction-hard", "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%", "Hard eviction thresholds: the node's MemoryPressure and DiskPressure, and evictions under memory pressure")
	fs.StringVar(&f.ContainerLogMaxSize, "container-log-max-size", "10Mi", "Size at which a container's log is rotated")
	fs.Int32Var(&f.ContainerLogMaxFiles, "container-log-max-files", 5, "Log files kept per container, the current one included (at least 2)")
	fs.DurationVar(&f.SyncFrequency, "sync-frequency", DefaultSyncFrequency, "Maximum period between pod syncs; ConfigMap, Secret and projected volumes are refreshed at this period")
	fs.StringVar(&f.PodLogsDir, "pod-logs-dir", DefaultPodLogsDir, "Root of the pods' log directories")
	fs.StringVar(&f.CgroupRoot, "cgroup-root", DefaultCgroupRoot, "Parent cgroup of pod sandboxes")
	fs.StringVar(&f.PodCIDR, "pod-cidr", DefaultPodCIDR, "Pod network of the embedded runtime's CNI bridge")
	fs.StringVar(&f.PodInfraContainerImage, "pod-infra-container-image", DefaultPodInfraContainerImage, "Sandbox (pause) image pinned in the embedded runtime")
	fs.StringVar(&f.PreloadImagesDir, "preload-images-dir", "", "Image archives (*.tar) imported into the embedded runtime at start")
	fs.IntVar(&f.MaxParallelCheckpoints, "max-parallel-checkpoints", 2, "Checkpoints of different containers taken at once; more wait in order")
	fs.IntVar(&f.CheckpointMaxPerContainer, "checkpoint-max-per-container", 5, "Archives kept per container, oldest deleted first (0 = no limit)")
	fs.DurationVar(&f.CheckpointMaxAge, "checkpoint-max-age", 7*24*time.Hour, "Archives older than this are deleted (0 = no limit)")
	fs.StringVar(&f.CheckpointMaxTotalBytes, "checkpoint-max-total-bytes", "20Gi", "Byte budget of the checkpoints directory, oldest deleted first (0 = no limit)")
	fs.StringSliceVar(&f.RestoreDirs, "restore-dirs", nil, "Directories whose checkpoint archives pods may be restored from (besides <root-dir>/checkpoints and <root-dir>/restore)")
	fs.BoolVar(&f.RestoreAcrossNamespaces, "restore-across-namespaces", false, "Let a pod restore a checkpoint archive taken in another namespace (off: only in the archive's own namespace)")
	fs.StringSliceVar(&f.RestorePeers, "restore-peers", nil, "Nodes POST /restores may pull archives from: host, host:port or CIDR (in cluster mode the Node objects' addresses are trusted too)")
	fs.StringVar(&f.NodeIP, "node-ip", "", "IP address the node reports (default: the first global address of an interface that is up)")
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "Join the cluster this kubeconfig points at as a node (registration, lease, node status)")
	fs.Var(cliflag.NewMapStringString(&f.NodeLabels), "node-labels", "Labels added to the Node object, key=value pairs")
	fs.StringVar(&f.PeerClientCertificate, "peer-client-certificate", "", "Client certificate this node presents to other nodes when it pulls a checkpoint archive (migration)")
	fs.StringVar(&f.PeerClientKey, "peer-client-key", "", "Key of --peer-client-certificate")
	fs.StringVar(&f.PeerCertificateAuthority, "peer-certificate-authority", "", "CA that signs other nodes' serving certificates")
	fs.StringVar(&f.ContainerLogsDir, "container-log-symlink-dir", "/var/log/containers", "Where to keep the kubelet's <pod>_<ns>_<container>-<id>.log symlinks for log agents (empty: none)")
	fs.DurationVar(&f.DevicePluginGracePeriod, "device-plugin-grace-period", 5*time.Minute, "How long a disconnected device plugin's devices keep their capacity")
	fs.DurationVar(&f.DevicePluginCallTimeout, "device-plugin-call-timeout", 30*time.Second, "Deadline of Allocate and GetPreferredAllocation calls to a device plugin")
}

// supportedFileFields are the KubeletConfiguration fields knode implements,
// as dotted JSON paths; a set field outside this list gets a warning.
var supportedFileFields = map[string]bool{
	"apiVersion": true, "kind": true,
	"staticPodPath": true, "podLogsDir": true, "syncFrequency": true, "fileCheckFrequency": true,
	"address": true, "port": true, "readOnlyPort": true,
	"tlsCertFile": true, "tlsPrivateKeyFile": true,
	"authentication.x509.clientCAFile": true, "authentication.anonymous.enabled": true, "authentication.webhook.enabled": true,
	"authorization.mode": true,
	"cgroupRoot":         true, "cgroupDriver": true, "runtimeRequestTimeout": true,
	"podCIDR": true, "resolvConf": true, "featureGates": true, "containerRuntimeEndpoint": true,
	"containerLogMaxSize": true, "containerLogMaxFiles": true,
	"evictionHard":                true,
	"imageGCHighThresholdPercent": true, "imageGCLowThresholdPercent": true, "imageMinimumGCAge": true,
}

// Load merges defaults, the --config file and the flags the operator set.
// It returns the configuration and one warning per unsupported file field.
func Load(fs *pflag.FlagSet, f *Flags) (*Config, []string, error) {
	cfg := &Config{
		RootDir:                   f.RootDir,
		Address:                   f.Address,
		Port:                      f.Port,
		ReadOnlyPort:              f.ReadOnlyPort,
		AuthorizationMode:         f.AuthorizationMode,
		RuntimeRequestTimeout:     f.RuntimeRequestTimeout,
		PodLogsDir:                f.PodLogsDir,
		FileCheckFrequency:        DefaultFileCheckFrequency,
		SyncFrequency:             DefaultSyncFrequency,
		CgroupRoot:                f.CgroupRoot,
		PodCIDR:                   f.PodCIDR,
		ResolvConf:                "/etc/resolv.conf",
		PodInfraContainerImage:    f.PodInfraContainerImage,
		PreloadImagesDir:          f.PreloadImagesDir,
		AnonymousAuth:             f.AnonymousAuth,
		MaxParallelCheckpoints:    f.MaxParallelCheckpoints,
		CheckpointMaxPerContainer: f.CheckpointMaxPerContainer,
		CheckpointMaxAge:          f.CheckpointMaxAge,
		DevicePluginGracePeriod:   f.DevicePluginGracePeriod,
		DevicePluginCallTimeout:   f.DevicePluginCallTimeout,
		ContainerLogsDir:          f.ContainerLogsDir,
		RestoreDirs:               f.RestoreDirs,
		RestoreAcrossNamespaces:   f.RestoreAcrossNamespaces,
		RestorePeers:              f.RestorePeers,
		PeerClientCertificate:     f.PeerClientCertificate,
		PeerClientKey:             f.PeerClientKey,
		PeerCertificateAuthority:  f.PeerCertificateAuthority,
		Kubeconfig:                f.Kubeconfig,
		NodeLabels:                f.NodeLabels,
		NodeIP:                    f.NodeIP,
		ContainerLogMaxFiles:      int(f.ContainerLogMaxFiles),
		ImageGCHighThreshold:      int(f.ImageGCHighThreshold),
		ImageGCLowThreshold:       int(f.ImageGCLowThreshold),
		ImageMinimumGCAge:         f.ImageMinimumGCAge,
		ImageGCPeriod:             f.ImageGCPeriod,
	}
	budget, err := resource.ParseQuantity(f.CheckpointMaxTotalBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("--checkpoint-max-total-bytes %q: %w", f.CheckpointMaxTotalBytes, err)
	}
	cfg.CheckpointMaxTotalBytes = budget.Value()
	gates := map[string]bool{}
	var warnings []string
	logMaxSize := f.ContainerLogMaxSize
	if f.ConfigFile != "" {
		kc, unsupported, err := ReadFile(f.ConfigFile)
		if err != nil {
			return nil, nil, err
		}
		applyFile(cfg, kc, gates)
		if kc.ContainerLogMaxSize != "" {
			logMaxSize = kc.ContainerLogMaxSize
		}
		if kc.EvictionHard != nil {
			cfg.EvictionHard = kc.EvictionHard
		}
		for _, field := range unsupported {
			warnings = append(warnings, fmt.Sprintf("%s: field %q is not implemented by knode and is ignored", f.ConfigFile, field))
		}
	}
	applyFlags(fs, f, cfg, gates)
	if f.ConfigFile != "" {
		if err := fileAuthNeedsCluster(fs, f.ConfigFile, cfg); err != nil {
			return nil, nil, err
		}
	}
	if fs.Changed("eviction-hard") || cfg.EvictionHard == nil {
		cfg.EvictionHard = map[string]string{}
		for _, part := range strings.Split(f.EvictionHard, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			signal, value, ok := strings.Cut(part, "<")
			if !ok {
				return nil, nil, fmt.Errorf("--eviction-hard %q: want signal<value, e.g. memory.available<100Mi", part)
			}
			cfg.EvictionHard[strings.TrimSpace(signal)] = strings.TrimSpace(value)
		}
	}
	if fs.Changed("container-log-max-size") {
		logMaxSize = f.ContainerLogMaxSize
	}
	size, err := resource.ParseQuantity(logMaxSize)
	if err != nil {
		return nil, nil, fmt.Errorf("container log max size %q: %w", logMaxSize, err)
	}
	cfg.ContainerLogMaxSize = size.Value()

	fg, err := NewFeatureGates(gates)
	if err != nil {
		return nil, nil, err
	}
	cfg.FeatureGates = fg
	name, err := nodeName(cfg.NodeName)
	if err != nil {
		return nil, nil, err
	}
	cfg.NodeName = name
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	return cfg, warnings, nil
}

func applyFile(cfg *Config, kc *kubeletv1beta1.KubeletConfiguration, gates map[string]bool) {
	setString := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setDuration := func(dst *time.Duration, v time.Duration) {
		if v != 0 {
			*dst = v
		}
	}
	setString(&cfg.PodManifestPath, kc.StaticPodPath)
	setString(&cfg.PodLogsDir, kc.PodLogsDir)
	setString(&cfg.Address, kc.Address)
	setString(&cfg.TLSCertFile, kc.TLSCertFile)
	setString(&cfg.TLSPrivateKeyFile, kc.TLSPrivateKeyFile)
	setString(&cfg.ClientCAFile, kc.Authentication.X509.ClientCAFile)
	setString(&cfg.CgroupRoot, kc.CgroupRoot)
	setString(&cfg.CgroupDriver, kc.CgroupDriver)
	setString(&cfg.PodCIDR, kc.PodCIDR)
	setString(&cfg.ContainerRuntimeEndpoint, kc.ContainerRuntimeEndpoint)
	if kc.ResolverConfig != nil {
		cfg.ResolvConf = *kc.ResolverConfig
	}
	setDuration(&cfg.SyncFrequency, kc.SyncFrequency.Duration)
	if kc.ContainerLogMaxFiles != nil {
		cfg.ContainerLogMaxFiles = int(*kc.ContainerLogMaxFiles)
	}
	if kc.ImageGCHighThresholdPercent != nil {
		cfg.ImageGCHighThreshold = int(*kc.ImageGCHighThresholdPercent)
	}
	if kc.ImageGCLowThresholdPercent != nil {
		cfg.ImageGCLowThreshold = int(*kc.ImageGCLowThresholdPercent)
	}
	setDuration(&cfg.ImageMinimumGCAge, kc.ImageMinimumGCAge.Duration)
	setDuration(&cfg.FileCheckFrequency, kc.FileCheckFrequency.Duration)
	setDuration(&cfg.RuntimeRequestTimeout, kc.RuntimeRequestTimeout.Duration)
	if kc.Port != 0 {
		cfg.Port = kc.Port
	}
	if kc.ReadOnlyPort != 0 {
		cfg.ReadOnlyPort = kc.ReadOnlyPort
	}
	applyFileAuthDefaults(cfg, kc)
	for k, v := range kc.FeatureGates {
		gates[k] = v
	}
}

// applyFileAuthDefaults applies a file's authentication and authorization
// with the kubelet's v1beta1 defaults for what it leaves unset (the
// kubelet's SetDefaults_KubeletConfiguration): bearer tokens checked by
// TokenReview, no anonymous access, authorization by SubjectAccessReview.
// A KubeletConfiguration written for the kubelet therefore means the same
// to knode; flags keep their own defaults.
func applyFileAuthDefaults(cfg *Config, kc *kubeletv1beta1.KubeletConfiguration) {
	cfg.AuthenticationTokenWebhook = true
	if kc.Authentication.Webhook.Enabled != nil {
		cfg.AuthenticationTokenWebhook = *kc.Authentication.Webhook.Enabled
	}
	cfg.AnonymousAuth = false
	if kc.Authentication.Anonymous.Enabled != nil {
		cfg.AnonymousAuth = *kc.Authentication.Anonymous.Enabled
	}
	cfg.AuthorizationMode = string(kubeletv1beta1.KubeletAuthorizationModeWebhook)
	if kc.Authorization.Mode != "" {
		cfg.AuthorizationMode = string(kc.Authorization.Mode)
	}
}

// fileAuthNeedsCluster refuses a configuration file whose authentication or
// authorization (set or defaulted, and not overridden by a flag) asks the
// API server while knode has none to ask, naming the field to set. The
// kubelet refuses such a file too ("no client provided, cannot use webhook
// authentication"); knode never falls back to AlwaysAllow for it.
func fileAuthNeedsCluster(fs *pflag.FlagSet, file string, cfg *Config) error {
	if cfg.Kubeconfig != "" {
		return nil
	}
	var reasons, fixes []string
	if cfg.AuthenticationTokenWebhook && !fs.Changed("authentication-token-webhook") {
		reasons = append(reasons, "authentication.webhook.enabled is true (the default when unset) and asks TokenReview")
		fixes = append(fixes, "authentication.webhook.enabled: false")
	}
	if cfg.AuthorizationMode == string(kubeletv1beta1.KubeletAuthorizationModeWebhook) && !fs.Changed("authorization-mode") {
		reasons = append(reasons, "authorization.mode is Webhook (the default when unset) and asks SubjectAccessReview")
		fixes = append(fixes, "authorization.mode: AlwaysAllow")
	}
	if len(reasons) == 0 {
		return nil
	}
	return fmt.Errorf("config file %s: %s, but without --kubeconfig there is no API server to ask (the kubelet: no client provided, cannot use webhook authentication): set %s in the file, or give --kubeconfig",
		file, strings.Join(reasons, " and "), strings.Join(fixes, " and "))
}

// applyFlags lets every explicitly set flag win over the file, as the kubelet does.
func applyFlags(fs *pflag.FlagSet, f *Flags, cfg *Config, gates map[string]bool) {
	set := func(name string, apply func()) {
		if fs.Changed(name) {
			apply()
		}
	}
	set("root-dir", func() { cfg.RootDir = f.RootDir })
	set("pod-manifest-path", func() { cfg.PodManifestPath = f.PodManifestPath })
	set("container-runtime-endpoint", func() { cfg.ContainerRuntimeEndpoint = f.ContainerRuntimeEndpoint })
	set("address", func() { cfg.Address = f.Address })
	set("port", func() { cfg.Port = f.Port })
	set("read-only-port", func() { cfg.ReadOnlyPort = f.ReadOnlyPort })
	set("tls-cert-file", func() { cfg.TLSCertFile = f.TLSCertFile })
	set("tls-private-key-file", func() { cfg.TLSPrivateKeyFile = f.TLSPrivateKeyFile })
	set("client-ca-file", func() { cfg.ClientCAFile = f.ClientCAFile })
	set("anonymous-auth", func() { cfg.AnonymousAuth = f.AnonymousAuth })
	set("authentication-token-webhook", func() { cfg.AuthenticationTokenWebhook = f.TokenWebhook })
	set("authorization-mode", func() { cfg.AuthorizationMode = f.AuthorizationMode })
	set("runtime-request-timeout", func() { cfg.RuntimeRequestTimeout = f.RuntimeRequestTimeout })
	set("sync-frequency", func() { cfg.SyncFrequency = f.SyncFrequency })
	set("container-log-max-files", func() { cfg.ContainerLogMaxFiles = int(f.ContainerLogMaxFiles) })
	set("image-gc-high-threshold", func() { cfg.ImageGCHighThreshold = int(f.ImageGCHighThreshold) })
	set("image-gc-low-threshold", func() { cfg.ImageGCLowThreshold = int(f.ImageGCLowThreshold) })
	set("minimum-image-ttl-duration", func() { cfg.ImageMinimumGCAge = f.ImageMinimumGCAge })
	set("pod-logs-dir", func() { cfg.PodLogsDir = f.PodLogsDir })
	set("cgroup-root", func() { cfg.CgroupRoot = f.CgroupRoot })
	set("pod-cidr", func() { cfg.PodCIDR = f.PodCIDR })
	cfg.NodeName = f.HostnameOverride
	// Flag gates are merged key by key over the file's, as in the kubelet.
	for k, v := range f.FeatureGates {
		gates[k] = v
	}
}

// ReadFile decodes a KubeletConfiguration strictly and lists the set fields
// knode does not implement, sorted.
func ReadFile(path string) (*kubeletv1beta1.KubeletConfiguration, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config file: %w", err)
	}
	return Parse(path, data)
}

// Parse is ReadFile on bytes already read; name is used in messages.
func Parse(name string, data []byte) (*kubeletv1beta1.KubeletConfiguration, []string, error) {
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict(data, &kc); err != nil {
		return nil, nil, fmt.Errorf("config file %s: %w", name, err)
	}
	wantVersion := kubeletv1beta1.SchemeGroupVersion.String()
	if kc.APIVersion != wantVersion || kc.Kind != "KubeletConfiguration" {
		return nil, nil, fmt.Errorf("config file %s: want apiVersion %s and kind KubeletConfiguration, got apiVersion %q kind %q",
			name, wantVersion, kc.APIVersion, kc.Kind)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, nil, fmt.Errorf("config file %s: %w", name, err)
	}
	var unsupported []string
	collectUnsupported("", raw, &unsupported)
	sort.Strings(unsupported)
	return &kc, unsupported, nil
}

// collectUnsupported walks the decoded document and records each set leaf
// whose path (or a parent path) is not in supportedFileFields.
func collectUnsupported(prefix string, node map[string]any, out *[]string) {
	for key, value := range node {
		path := key
		if prefix != "" {
			path = prefix + "." + key
		}
		if supportedFileFields[path] {
			continue
		}
		if child, ok := value.(map[string]any); ok && hasSupportedChild(path) {
			collectUnsupported(path, child, out)
			continue
		}
		*out = append(*out, path)
	}
}

func hasSupportedChild(path string) bool {
	for field := range supportedFileFields {
		if strings.HasPrefix(field, path+".") {
			return true
		}
	}
	return false
}
