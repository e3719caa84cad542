package config

import (
	"strconv"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cliflag "k8s.io/component-base/cli/flag"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

type kubeletConfig = kubeletv1beta1.KubeletConfiguration

// setting is one knob, defined once: its flag (name, default, help, bound
// to a field of Config), its KubeletConfiguration field, and whether
// /configz shows it. Load, the file's list of implemented fields and
// /configz are all derived from the table; a new setting is a Config field
// and a row here.
type setting struct {
	// flag is the flag's name; "" for a setting only the file has.
	flag string
	// field is the KubeletConfiguration field, as a dotted JSON path; "" for none.
	field string
	// register binds the flag, with its default and help, to c's field.
	register func(fs *pflag.FlagSet, c *Config)
	// copy moves the value from the flags' Config to the effective one.
	copy func(dst, src *Config)
	// fromFile applies the field when the file sets it; nil when Load
	// applies it itself (authentication, authorization).
	fromFile func(dst *Config, kc *kubeletConfig)
	// toFile shows the effective value in /configz; nil: not shown.
	toFile func(kc *kubeletConfig, c *Config)
}

// row is a setting under construction whose Config field has type T.
type row[T comparable] struct {
	setting
	p func(*Config) *T
}

// bind is a flag of type T registered by reg (a pflag.FlagSet method).
func bind[T comparable](name string, def T, help string, reg func(*pflag.FlagSet, *T, string, T, string), p func(*Config) *T) row[T] {
	return row[T]{setting: setting{flag: name,
		register: func(fs *pflag.FlagSet, c *Config) { reg(fs, p(c), name, def, help) },
		copy:     func(dst, src *Config) { *p(dst) = *p(src) },
	}, p: p}
}

// inFile adds the file's field of the same type: a set (non-zero) value
// applies; shown puts the effective value in /configz.
func (r row[T]) inFile(path string, k func(*kubeletConfig) *T, shown bool) setting {
	s := r.setting
	s.field = path
	s.fromFile = func(dst *Config, kc *kubeletConfig) {
		var zero T
		if v := *k(kc); v != zero {
			*r.p(dst) = v
		}
	}
	if shown {
		s.toFile = func(kc *kubeletConfig, c *Config) { *k(kc) = *r.p(c) }
	}
	return s
}

// named records the file's field of a setting Load applies itself.
func (r row[T]) named(path string) setting {
	s := r.setting
	s.field = path
	return s
}

func (r row[T]) flagOnly() setting { return r.setting }

// durationIn is the file's metav1.Duration field of a duration setting.
func durationIn(r row[time.Duration], path string, k func(*kubeletConfig) *metav1.Duration, shown bool) setting {
	s := r.setting
	s.field = path
	s.fromFile = func(dst *Config, kc *kubeletConfig) {
		if v := k(kc).Duration; v != 0 {
			*r.p(dst) = v
		}
	}
	if shown {
		s.toFile = func(kc *kubeletConfig, c *Config) { *k(kc) = metav1.Duration{Duration: *r.p(c)} }
	}
	return s
}

// int32In is the file's optional int32 field of an int setting.
func int32In(r row[int], path string, k func(*kubeletConfig) **int32) setting {
	s := r.setting
	s.field = path
	s.fromFile = func(dst *Config, kc *kubeletConfig) {
		if v := *k(kc); v != nil {
			*r.p(dst) = int(*v)
		}
	}
	return s
}

// boolPtrIn is the file's optional bool field of a bool setting, shown in
// /configz.
func boolPtrIn(r row[bool], path string, k func(*kubeletConfig) **bool) setting {
	s := r.setting
	s.field = path
	s.fromFile = func(dst *Config, kc *kubeletConfig) {
		if v := *k(kc); v != nil {
			*r.p(dst) = *v
		}
	}
	s.toFile = func(kc *kubeletConfig, c *Config) {
		v := *r.p(c)
		*k(kc) = &v
	}
	return s
}

// sliceIn is a list setting with the file's list field of the same name,
// shown in /configz.
func sliceIn(name, help string, p func(*Config) *[]string, path string, k func(*kubeletConfig) *[]string) setting {
	s := sliceSetting(name, help, p)
	s.field = path
	s.fromFile = func(dst *Config, kc *kubeletConfig) {
		if v := *k(kc); v != nil {
			*p(dst) = v
		}
	}
	s.toFile = func(kc *kubeletConfig, c *Config) { *k(kc) = *p(c) }
	return s
}

// Registration helpers with the pflag.FlagSet method shape bind takes.
var (
	stringFlag   = (*pflag.FlagSet).StringVar
	boolFlag     = (*pflag.FlagSet).BoolVar
	intFlag      = (*pflag.FlagSet).IntVar
	int32Flag    = (*pflag.FlagSet).Int32Var
	durationFlag = (*pflag.FlagSet).DurationVar
)

// int32AsInt is an int32 flag (the kubelet's type) stored in an int field.
func int32AsInt(fs *pflag.FlagSet, p *int, name string, def int, help string) {
	*p = def
	fs.Var((*int32Value)(p), name, help)
}

type int32Value int

func (v *int32Value) String() string { return strconv.Itoa(int(*v)) }
func (v *int32Value) Type() string   { return "int32" }
func (v *int32Value) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 32)
	if err != nil {
		return err
	}
	*v = int32Value(n)
	return nil
}

// sliceSetting and mapSetting are flag-only settings of types bind cannot compare.
func sliceSetting(name, help string, p func(*Config) *[]string) setting {
	return setting{flag: name,
		register: func(fs *pflag.FlagSet, c *Config) { fs.StringSliceVar(p(c), name, nil, help) },
		copy:     func(dst, src *Config) { *p(dst) = *p(src) },
	}
}

func mapSetting(name, help string, p func(*Config) *map[string]string) setting {
	return setting{flag: name,
		register: func(fs *pflag.FlagSet, c *Config) { fs.Var(cliflag.NewMapStringString(p(c)), name, help) },
		copy:     func(dst, src *Config) { *p(dst) = *p(src) },
	}
}

// settings are knode's knobs in the order --help lists them. Flags that
// need parsing beyond their type (--config, --hostname-override,
// --feature-gates, --eviction-hard and the two quantities) are Flags'
// own fields, registered in AddFlags and merged in Load.
var settings = []setting{
	bind("root-dir", DefaultRootDir, "Directory for knode's files (checkpoints, device plugins, pod volumes, embedded runtime)", stringFlag,
		func(c *Config) *string { return &c.RootDir }).flagOnly(),
	bind("pod-manifest-path", "", "Directory of static pod manifests (YAML or JSON), watched for changes", stringFlag,
		func(c *Config) *string { return &c.PodManifestPath }).inFile("staticPodPath", func(k *kubeletConfig) *string { return &k.StaticPodPath }, true),
	bind("container-runtime-endpoint", "", "CRI endpoint, e.g. unix:///run/containerd/containerd.sock; empty starts an embedded containerd", stringFlag,
		func(c *Config) *string { return &c.ContainerRuntimeEndpoint }).inFile("containerRuntimeEndpoint", func(k *kubeletConfig) *string { return &k.ContainerRuntimeEndpoint }, true),
	bind("address", "0.0.0.0", "IP address to serve the HTTPS API on", stringFlag,
		func(c *Config) *string { return &c.Address }).inFile("address", func(k *kubeletConfig) *string { return &k.Address }, true),
	bind("port", DefaultPort, "Port of the HTTPS API", int32Flag,
		func(c *Config) *int32 { return &c.Port }).inFile("port", func(k *kubeletConfig) *int32 { return &k.Port }, true),
	bind("read-only-port", 0, "Port of the plain-HTTP read-only API (0 = off)", int32Flag,
		func(c *Config) *int32 { return &c.ReadOnlyPort }).inFile("readOnlyPort", func(k *kubeletConfig) *int32 { return &k.ReadOnlyPort }, true),
	bind("tls-cert-file", "", "Serving certificate; without it one is generated under <root-dir>/pki", stringFlag,
		func(c *Config) *string { return &c.TLSCertFile }).inFile("tlsCertFile", func(k *kubeletConfig) *string { return &k.TLSCertFile }, true),
	bind("tls-private-key-file", "", "Private key of --tls-cert-file", stringFlag,
		func(c *Config) *string { return &c.TLSPrivateKeyFile }).inFile("tlsPrivateKeyFile", func(k *kubeletConfig) *string { return &k.TLSPrivateKeyFile }, true),
	// /configz shows the CA in effect, which may be the node-local one: see KubeletConfiguration.
	bind("client-ca-file", "", "CA bundle that signs accepted client certificates", stringFlag,
		func(c *Config) *string { return &c.ClientCAFile }).inFile("authentication.x509.clientCAFile", func(k *kubeletConfig) *string { return &k.Authentication.X509.ClientCAFile }, false),
	bind("anonymous-auth", false, "Serve unauthenticated requests as system:anonymous", boolFlag,
		func(c *Config) *bool { return &c.AnonymousAuth }).named("authentication.anonymous.enabled"),
	bind("authentication-token-webhook", false, "Authenticate bearer tokens with the API server's TokenReview (cluster mode)", boolFlag,
		func(c *Config) *bool { return &c.AuthenticationTokenWebhook }).named("authentication.webhook.enabled"),
	bind("authorization-mode", DefaultAuthorizationMode, "AlwaysAllow or Webhook", stringFlag,
		func(c *Config) *string { return &c.AuthorizationMode }).named("authorization.mode"),
	durationIn(bind("runtime-request-timeout", DefaultRuntimeRequestTimeout, "Deadline of CRI requests (long-running ones excepted)", durationFlag,
		func(c *Config) *time.Duration { return &c.RuntimeRequestTimeout }), "runtimeRequestTimeout", func(k *kubeletConfig) *metav1.Duration { return &k.RuntimeRequestTimeout }, true),
	int32In(bind("image-gc-high-threshold", 85, "Percent of the image filesystem in use above which unused images are removed (100 disables)", int32AsInt,
		func(c *Config) *int { return &c.ImageGCHighThreshold }), "imageGCHighThresholdPercent", func(k *kubeletConfig) **int32 { return &k.ImageGCHighThresholdPercent }),
	int32In(bind("image-gc-low-threshold", 80, "Percent of the image filesystem in use that image garbage collection brings usage down to", int32AsInt,
		func(c *Config) *int { return &c.ImageGCLowThreshold }), "imageGCLowThresholdPercent", func(k *kubeletConfig) **int32 { return &k.ImageGCLowThresholdPercent }),
	durationIn(bind("minimum-image-ttl-duration", 2*time.Minute, "Minimum age of an unused image before it may be removed", durationFlag,
		func(c *Config) *time.Duration { return &c.ImageMinimumGCAge }), "imageMinimumGCAge", func(k *kubeletConfig) *metav1.Duration { return &k.ImageMinimumGCAge }, false),
	bind("image-gc-period", 5*time.Minute, "How often image filesystem usage is checked", durationFlag,
		func(c *Config) *time.Duration { return &c.ImageGCPeriod }).flagOnly(),
	int32In(bind("container-log-max-files", 5, "Log files kept per container, the current one included (at least 2)", int32AsInt,
		func(c *Config) *int { return &c.ContainerLogMaxFiles }), "containerLogMaxFiles", func(k *kubeletConfig) **int32 { return &k.ContainerLogMaxFiles }),
	durationIn(bind("sync-frequency", DefaultSyncFrequency, "Maximum period between pod syncs; ConfigMap, Secret and projected volumes are refreshed at this period", durationFlag,
		func(c *Config) *time.Duration { return &c.SyncFrequency }), "syncFrequency", func(k *kubeletConfig) *metav1.Duration { return &k.SyncFrequency }, true),
	bind("pod-logs-dir", DefaultPodLogsDir, "Root of the pods' log directories", stringFlag,
		func(c *Config) *string { return &c.PodLogsDir }).inFile("podLogsDir", func(k *kubeletConfig) *string { return &k.PodLogsDir }, true),
	bind("cgroup-root", DefaultCgroupRoot, "Parent cgroup of pod sandboxes", stringFlag,
		func(c *Config) *string { return &c.CgroupRoot }).inFile("cgroupRoot", func(k *kubeletConfig) *string { return &k.CgroupRoot }, true),
	bind("cluster-domain", "", "DNS domain of the cluster, in a pod's FQDN (<hostname>.<subdomain>.<namespace>.svc.<domain>); the kubelet's default is empty", stringFlag,
		func(c *Config) *string { return &c.ClusterDomain }).inFile("clusterDomain", func(k *kubeletConfig) *string { return &k.ClusterDomain }, true),
	bind("pod-cidr", DefaultPodCIDR, "Pod network of the embedded runtime's CNI bridge", stringFlag,
		func(c *Config) *string { return &c.PodCIDR }).inFile("podCIDR", func(k *kubeletConfig) *string { return &k.PodCIDR }, true),
	bind("pod-infra-container-image", DefaultPodInfraContainerImage, "Sandbox (pause) image pinned in the embedded runtime", stringFlag,
		func(c *Config) *string { return &c.PodInfraContainerImage }).flagOnly(),
	bind("preload-images-dir", "", "Image archives (*.tar) imported into the embedded runtime at start", stringFlag,
		func(c *Config) *string { return &c.PreloadImagesDir }).flagOnly(),
	bind("max-parallel-checkpoints", 2, "Checkpoints of different containers taken at once; more wait in order", intFlag,
		func(c *Config) *int { return &c.MaxParallelCheckpoints }).flagOnly(),
	bind("checkpoint-max-per-container", 5, "Archives kept per container, oldest deleted first (0 = no limit)", intFlag,
		func(c *Config) *int { return &c.CheckpointMaxPerContainer }).flagOnly(),
	bind("checkpoint-max-age", 7*24*time.Hour, "Archives older than this are deleted (0 = no limit)", durationFlag,
		func(c *Config) *time.Duration { return &c.CheckpointMaxAge }).flagOnly(),
	sliceSetting("restore-dirs", "Directories whose checkpoint archives pods may be restored from (besides <root-dir>/checkpoints and <root-dir>/restore)",
		func(c *Config) *[]string { return &c.RestoreDirs }),
	bind("restore-across-namespaces", false, "Let a pod restore a checkpoint archive taken in another namespace (off: only in the archive's own namespace)", boolFlag,
		func(c *Config) *bool { return &c.RestoreAcrossNamespaces }).flagOnly(),
	sliceSetting("restore-peers", "Nodes POST /restores may pull archives from: host, host:port or CIDR (in cluster mode the Node objects' addresses are trusted too)",
		func(c *Config) *[]string { return &c.RestorePeers }),
	bind("node-ip", "", "IP address the node reports (default: the first global address of an interface that is up)", stringFlag,
		func(c *Config) *string { return &c.NodeIP }).flagOnly(),
	bind("kubeconfig", "", "Join the cluster this kubeconfig points at as a node (registration, lease, node status)", stringFlag,
		func(c *Config) *string { return &c.Kubeconfig }).flagOnly(),
	mapSetting("node-labels", "Labels added to the Node object, key=value pairs",
		func(c *Config) *map[string]string { return &c.NodeLabels }),
	bind("peer-client-certificate", "", "Client certificate this node presents to other nodes when it pulls a checkpoint archive (migration)", stringFlag,
		func(c *Config) *string { return &c.PeerClientCertificate }).flagOnly(),
	bind("peer-client-key", "", "Key of --peer-client-certificate", stringFlag,
		func(c *Config) *string { return &c.PeerClientKey }).flagOnly(),
	bind("peer-certificate-authority", "", "CA that signs other nodes' serving certificates", stringFlag,
		func(c *Config) *string { return &c.PeerCertificateAuthority }).flagOnly(),
	bind("container-log-symlink-dir", "/var/log/containers", "Where to keep the kubelet's <pod>_<ns>_<container>-<id>.log symlinks for log agents (empty: none)", stringFlag,
		func(c *Config) *string { return &c.ContainerLogsDir }).flagOnly(),
	bind("device-plugin-grace-period", 5*time.Minute, "How long a disconnected device plugin's devices keep their capacity", durationFlag,
		func(c *Config) *time.Duration { return &c.DevicePluginGracePeriod }).flagOnly(),
	bind("device-plugin-call-timeout", 30*time.Second, "Deadline of Allocate and GetPreferredAllocation calls to a device plugin", durationFlag,
		func(c *Config) *time.Duration { return &c.DevicePluginCallTimeout }).flagOnly(),

	boolPtrIn(bind("seccomp-default", false, "Give containers without a seccomp profile the runtime's default profile (RuntimeDefault) instead of none", boolFlag,
		func(c *Config) *bool { return &c.SeccompDefault }), "seccompDefault", func(k *kubeletConfig) **bool { return &k.SeccompDefault }),
	sliceIn("allowed-unsafe-sysctls", "Sysctls (or prefixes ending in '*') pods may set besides the safe set, e.g. 'kernel.msg*,net.core.somaxconn'; only namespaced ones",
		func(c *Config) *[]string { return &c.AllowedUnsafeSysctls }, "allowedUnsafeSysctls", func(k *kubeletConfig) *[]string { return &k.AllowedUnsafeSysctls }),

	// Only the file has these.
	{field: "fileCheckFrequency",
		fromFile: func(dst *Config, kc *kubeletConfig) {
			if v := kc.FileCheckFrequency.Duration; v != 0 {
				dst.FileCheckFrequency = v
			}
		},
		toFile: func(kc *kubeletConfig, c *Config) {
			kc.FileCheckFrequency = metav1.Duration{Duration: c.FileCheckFrequency}
		}},
	{field: "cgroupDriver",
		fromFile: func(dst *Config, kc *kubeletConfig) {
			if kc.CgroupDriver != "" {
				dst.CgroupDriver = kc.CgroupDriver
			}
		},
		// Validate admits only cgroupfs.
		toFile: func(kc *kubeletConfig, _ *Config) { kc.CgroupDriver = "cgroupfs" }},
	{field: "resolvConf",
		fromFile: func(dst *Config, kc *kubeletConfig) {
			if kc.ResolverConfig != nil {
				dst.ResolvConf = *kc.ResolverConfig
			}
		},
		toFile: func(kc *kubeletConfig, c *Config) { kc.ResolverConfig = &c.ResolvConf }},
}

// KubeletConfiguration presents the effective configuration in the
// kubelet's own type, for /configz. It holds paths, never key material;
// clientCAFile is the CA in effect (the node-local one when none is set).
func (c *Config) KubeletConfiguration(clientCAFile string) *kubeletConfig {
	kc := &kubeletConfig{TypeMeta: metav1.TypeMeta{Kind: "KubeletConfiguration", APIVersion: kubeletv1beta1.SchemeGroupVersion.String()}}
	for _, s := range settings {
		if s.toFile != nil {
			s.toFile(kc, c)
		}
	}
	kc.FeatureGates = c.FeatureGates.Map()
	kc.Authentication.X509.ClientCAFile = clientCAFile
	kc.Authentication.Anonymous.Enabled = &c.AnonymousAuth
	kc.Authentication.Webhook.Enabled = &c.AuthenticationTokenWebhook
	kc.Authorization.Mode = kubeletv1beta1.KubeletAuthorizationMode(c.AuthorizationMode)
	return kc
}
