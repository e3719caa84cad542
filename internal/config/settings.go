package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cliflag "k8s.io/component-base/cli/flag"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

type kubeletConfig = kubeletv1beta1.KubeletConfiguration

// setting is one knob, defined once: its flag (name, default, help, bound
// to a field of Config), its KubeletConfiguration field, how the file's
// value and the flag's merge, what is derived from the merged value, and
// whether /configz shows it. Flags, Load, the file's list of implemented
// fields and /configz are all derived from the table: a new setting is a
// Config field and a row in settings, made with one of the helpers below
// (bind + inFile/inFilePtr/durationIn/int32In/flagOnly, list, mapping,
// quantity, thresholds).
type setting struct {
	// flag is the flag's name; "" for a setting only the file has.
	flag string
	// field is the KubeletConfiguration field, as a dotted JSON path; "" for none.
	field string
	// register binds the flag, with its default and help, to c's field.
	register func(fs *pflag.FlagSet, c *Config)
	// copy moves the value from the flags' Config to the effective one
	// (merges it, for feature gates).
	copy func(dst, src *Config)
	// initial is the value of a setting only the file has, before the file.
	initial func(c *Config)
	// fromFile applies the field as the file has it (set, or defaulted
	// when the kubelet defaults it); an error refuses the file.
	fromFile func(dst *Config, kc *kubeletConfig) error
	// finish derives the effective value once file and flags are merged
	// (the node name lower-cased, the feature gates checked).
	finish func(c *Config) error
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
	s.fromFile = func(dst *Config, kc *kubeletConfig) error {
		var zero T
		if v := *k(kc); v != zero {
			*r.p(dst) = v
		}
		return nil
	}
	if shown {
		s.toFile = func(kc *kubeletConfig, c *Config) { *k(kc) = *r.p(c) }
	}
	return s
}

// inFilePtr adds the file's optional (pointer) field. fileDefault is what
// a file that leaves it unset means, when the kubelet's v1beta1 defaults
// give it a value the flag's default does not have (authentication and
// authorization); nil keeps the flag's value.
func (r row[T]) inFilePtr(path string, k func(*kubeletConfig) **T, fileDefault *T, shown bool) setting {
	s := r.setting
	s.field = path
	s.fromFile = func(dst *Config, kc *kubeletConfig) error {
		switch v := *k(kc); {
		case v != nil:
			*r.p(dst) = *v
		case fileDefault != nil:
			*r.p(dst) = *fileDefault
		}
		return nil
	}
	if shown {
		s.toFile = func(kc *kubeletConfig, c *Config) { v := *r.p(c); *k(kc) = &v }
	}
	return s
}

// inFileAs is the file's field when its type is not the flag's: from
// applies the file's value (or its default), to shows the effective one.
func (r row[T]) inFileAs(path string, from func(kc *kubeletConfig, v *T), to func(kc *kubeletConfig, v T)) setting {
	s := r.setting
	s.field = path
	s.fromFile = func(dst *Config, kc *kubeletConfig) error {
		from(kc, r.p(dst))
		return nil
	}
	s.toFile = func(kc *kubeletConfig, c *Config) { to(kc, *r.p(c)) }
	return s
}

// then derives the effective value once file and flags are merged.
func (r row[T]) then(finish func(c *Config) error) row[T] {
	r.finish = finish
	return r
}

func (r row[T]) flagOnly() setting { return r.setting }

// defaulted is a file default for inFilePtr.
func defaulted[T any](v T) *T { return &v }

// durationIn is the file's metav1.Duration field of a duration setting.
func durationIn(r row[time.Duration], path string, k func(*kubeletConfig) *metav1.Duration, shown bool) setting {
	s := r.setting
	s.field = path
	s.fromFile = func(dst *Config, kc *kubeletConfig) error {
		if v := k(kc).Duration; v != 0 {
			*r.p(dst) = v
		}
		return nil
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
	s.fromFile = func(dst *Config, kc *kubeletConfig) error {
		if v := *k(kc); v != nil {
			*r.p(dst) = int(*v)
		}
		return nil
	}
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

// list is a comma-separated list setting.
func list(name, help string, p func(*Config) *[]string) wholeRow[[]string] {
	return wholeRow[[]string]{setting{flag: name,
		register: func(fs *pflag.FlagSet, c *Config) { fs.StringSliceVar(p(c), name, nil, help) },
		copy:     func(dst, src *Config) { *p(dst) = *p(src) },
	}, p}
}

// mapping is a key=value,... setting.
func mapping(name, help string, p func(*Config) *map[string]string) wholeRow[map[string]string] {
	return wholeRow[map[string]string]{setting{flag: name,
		register: func(fs *pflag.FlagSet, c *Config) { fs.Var(cliflag.NewMapStringString(p(c)), name, help) },
		copy:     func(dst, src *Config) { *p(dst) = *p(src) },
	}, p}
}

// wholeRow is a list or map setting: its file field, if any, replaces the
// whole value when the file sets it (the kubelet's rule for such fields).
type wholeRow[T ~[]string | ~map[string]string] struct {
	setting
	p func(*Config) *T
}

func (r wholeRow[T]) flagOnly() setting { return r.setting }

func (r wholeRow[T]) inFile(path string, k func(*kubeletConfig) *T, shown bool) setting {
	s := r.setting
	s.field = path
	s.fromFile = func(dst *Config, kc *kubeletConfig) error {
		if v := *k(kc); v != nil {
			*r.p(dst) = v
		}
		return nil
	}
	if shown {
		s.toFile = func(kc *kubeletConfig, c *Config) { *k(kc) = *r.p(c) }
	}
	return s
}

// parsedFlag registers v, a value parsed beyond its type, set to def. A
// default that does not parse is a bad row, which every test that
// registers the flags catches.
func parsedFlag(fs *pflag.FlagSet, v pflag.Value, name, def, help string) {
	if err := v.Set(def); err != nil {
		panic("config: default of --" + name + ": " + err.Error())
	}
	fs.Var(v, name, help)
}

// thresholds is a signal<value,... setting (the kubelet's evictionHard),
// parsed when the flag is; the file's map replaces it when set.
func thresholds(name, def, help string, p func(*Config) *map[string]string) wholeRow[map[string]string] {
	return wholeRow[map[string]string]{setting{flag: name,
		register: func(fs *pflag.FlagSet, c *Config) { parsedFlag(fs, (*thresholdsValue)(p(c)), name, def, help) },
		copy:     func(dst, src *Config) { *p(dst) = *p(src) },
	}, p}
}

type thresholdsValue map[string]string

func (v *thresholdsValue) Type() string { return "thresholds" }
func (v *thresholdsValue) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(*v)) {
		parts = append(parts, k+"<"+(*v)[k])
	}
	return strings.Join(parts, ",")
}
func (v *thresholdsValue) Set(s string) error {
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		signal, value, ok := strings.Cut(part, "<")
		if !ok {
			return fmt.Errorf("%q: want signal<value, e.g. memory.available<100Mi", part)
		}
		m[strings.TrimSpace(signal)] = strings.TrimSpace(value)
	}
	*v = m
	return nil
}

// quantity is a byte size given as a resource quantity (10Mi, 20Gi),
// parsed when the flag is and stored in bytes.
func quantity(name, def, help string, p func(*Config) *int64) quantityRow {
	return quantityRow{setting{flag: name,
		register: func(fs *pflag.FlagSet, c *Config) { parsedFlag(fs, (*quantityValue)(p(c)), name, def, help) },
		copy:     func(dst, src *Config) { *p(dst) = *p(src) },
	}, p}
}

type quantityRow struct {
	setting
	p func(*Config) *int64
}

func (r quantityRow) flagOnly() setting { return r.setting }

// inFile is the file's quantity string field; a set value that does not
// parse refuses the file.
func (r quantityRow) inFile(path string, k func(*kubeletConfig) *string) setting {
	s := r.setting
	s.field = path
	s.fromFile = func(dst *Config, kc *kubeletConfig) error {
		if v := *k(kc); v != "" {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return fmt.Errorf("%s %q: %w", path, v, err)
			}
			*r.p(dst) = q.Value()
		}
		return nil
	}
	return s
}

type quantityValue int64

func (v *quantityValue) Type() string { return "quantity" }
func (v *quantityValue) String() string {
	return resource.NewQuantity(int64(*v), resource.BinarySI).String()
}
func (v *quantityValue) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("want a quantity such as 10Mi: %w", err)
	}
	*v = quantityValue(q.Value())
	return nil
}

// featureGates is the --feature-gates/featureGates setting: the file's
// gates, then the flag's merged over them key by key (as the kubelet
// merges them), checked against the gates knode knows once merged.
func featureGates(help string) setting {
	return setting{flag: "feature-gates", field: "featureGates",
		register: func(fs *pflag.FlagSet, c *Config) {
			fs.Var(cliflag.NewMapStringBool(&c.featureGates), "feature-gates", help)
		},
		copy: func(dst, src *Config) { dst.featureGates = mergeGates(dst.featureGates, src.featureGates) },
		fromFile: func(dst *Config, kc *kubeletConfig) error {
			dst.featureGates = mergeGates(dst.featureGates, kc.FeatureGates)
			return nil
		},
		finish: func(c *Config) (err error) {
			c.FeatureGates, err = NewFeatureGates(c.featureGates)
			return err
		},
		toFile: func(kc *kubeletConfig, c *Config) { kc.FeatureGates = c.FeatureGates.Map() },
	}
}

func mergeGates(dst, over map[string]bool) map[string]bool {
	out := maps.Clone(dst)
	if out == nil {
		out = map[string]bool{}
	}
	maps.Copy(out, over)
	return out
}

// settings are knode's knobs in the order --help lists them. Every flag
// config registers is a row; the file's fields knode reads are rows.
var settings = []setting{
	// --config is the file the rows' fields are read from: Load reads it
	// once every flag's value is in, so the file cannot set it.
	bind("config", "", "KubeletConfiguration (kubelet.config.k8s.io/v1beta1) file; flags override it", stringFlag,
		func(c *Config) *string { return &c.ConfigFile }).flagOnly(),
	bind("hostname-override", "", "Node name to use instead of the host name", stringFlag,
		func(c *Config) *string { return &c.NodeName }).then(func(c *Config) (err error) {
		c.NodeName, err = nodeName(c.NodeName)
		return err
	}).flagOnly(),
	featureGates("key=value pairs of feature gates; known: " + strings.Join(KnownGates(), ", ")),
	thresholds("eviction-hard", "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%", "Hard eviction thresholds: the node's MemoryPressure and DiskPressure, and evictions under memory pressure",
		func(c *Config) *map[string]string { return &c.EvictionHard }).inFile("evictionHard", func(k *kubeletConfig) *map[string]string { return &k.EvictionHard }, false),
	quantity("container-log-max-size", "10Mi", "Size at which a container's log is rotated",
		func(c *Config) *int64 { return &c.ContainerLogMaxSize }).inFile("containerLogMaxSize", func(k *kubeletConfig) *string { return &k.ContainerLogMaxSize }),
	quantity("checkpoint-max-total-bytes", "20Gi", "Byte budget of the checkpoints directory, oldest deleted first (0 = no limit)",
		func(c *Config) *int64 { return &c.CheckpointMaxTotalBytes }).flagOnly(),
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
	// A file gets the kubelet's v1beta1 defaults for what it leaves unset
	// (SetDefaults_KubeletConfiguration): bearer tokens checked by
	// TokenReview, no anonymous access, authorization by
	// SubjectAccessReview, so a KubeletConfiguration written for the
	// kubelet means the same to knode; flags keep their own defaults, and
	// Load refuses a file whose defaults need an API server knode lacks.
	bind("anonymous-auth", false, "Serve unauthenticated requests as system:anonymous", boolFlag,
		func(c *Config) *bool { return &c.AnonymousAuth }).inFilePtr("authentication.anonymous.enabled",
		func(k *kubeletConfig) **bool { return &k.Authentication.Anonymous.Enabled }, defaulted(false), true),
	bind("authentication-token-webhook", false, "Authenticate bearer tokens with the API server's TokenReview (cluster mode)", boolFlag,
		func(c *Config) *bool { return &c.AuthenticationTokenWebhook }).inFilePtr("authentication.webhook.enabled",
		func(k *kubeletConfig) **bool { return &k.Authentication.Webhook.Enabled }, defaulted(true), true),
	bind("authorization-mode", DefaultAuthorizationMode, "AlwaysAllow or Webhook", stringFlag,
		func(c *Config) *string { return &c.AuthorizationMode }).inFileAs("authorization.mode",
		func(k *kubeletConfig, v *string) {
			*v = string(kubeletv1beta1.KubeletAuthorizationModeWebhook)
			if k.Authorization.Mode != "" {
				*v = string(k.Authorization.Mode)
			}
		},
		func(k *kubeletConfig, v string) { k.Authorization.Mode = kubeletv1beta1.KubeletAuthorizationMode(v) }),
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
	mapping("kube-reserved", "Resources kept back for Kubernetes daemons (cpu, memory, ephemeral-storage, hugepages-<size>; pid is refused: knode sets no pids limit), subtracted from the node's allocatable",
		func(c *Config) *map[string]string { return &c.KubeReserved }).inFile("kubeReserved", func(k *kubeletConfig) *map[string]string { return &k.KubeReserved }, true),
	mapping("system-reserved", "Resources kept back for the operating system (cpu, memory, ephemeral-storage, hugepages-<size>; pid is refused: knode sets no pids limit), subtracted from the node's allocatable",
		func(c *Config) *map[string]string { return &c.SystemReserved }).inFile("systemReserved", func(k *kubeletConfig) *map[string]string { return &k.SystemReserved }, true),
	list("enforce-node-allocatable", "Where the node's allocatable is enforced: pods (the kubepods cgroup is limited to it; the default) or none",
		func(c *Config) *[]string { return &c.EnforceNodeAllocatable }).inFile("enforceNodeAllocatable", func(k *kubeletConfig) *[]string { return &k.EnforceNodeAllocatable }, true),
	bind("max-pods", int32(110), "Most pods the node admits at once (the node's pods capacity); more are refused with OutOfpods", int32Flag,
		func(c *Config) *int32 { return &c.MaxPods }).inFile("maxPods", func(k *kubeletConfig) *int32 { return &k.MaxPods }, true),
	bind("cluster-domain", "", "DNS domain of the cluster, in a pod's FQDN (<hostname>.<subdomain>.<namespace>.svc.<domain>); the kubelet's default is empty", stringFlag,
		func(c *Config) *string { return &c.ClusterDomain }).inFile("clusterDomain", func(k *kubeletConfig) *string { return &k.ClusterDomain }, true),
	bind("resolv-conf", DefaultResolvConf, "Resolver configuration file the pods' DNS starts from (Default pods use it, ClusterFirst ones add its searches); empty: the local resolver", stringFlag,
		func(c *Config) *string { return &c.ResolvConf }).inFilePtr("resolvConf", func(k *kubeletConfig) **string { return &k.ResolverConfig }, nil, true),
	list("cluster-dns", "Comma-separated IP addresses of the cluster's DNS servers, the nameservers of ClusterFirst pods (none: they fall back to Default, with the MissingClusterDNS event)",
		func(c *Config) *[]string { return &c.ClusterDNS }).inFile("clusterDNS", func(k *kubeletConfig) *[]string { return &k.ClusterDNS }, true),
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
	list("restore-dirs", "Directories whose checkpoint archives pods may be restored from (besides <root-dir>/checkpoints and <root-dir>/restore)",
		func(c *Config) *[]string { return &c.RestoreDirs }).flagOnly(),
	bind("restore-across-namespaces", false, "Let a pod restore a checkpoint archive taken in another namespace (off: only in the archive's own namespace)", boolFlag,
		func(c *Config) *bool { return &c.RestoreAcrossNamespaces }).flagOnly(),
	list("restore-peers", "Nodes POST /restores may pull archives from: host, host:port or CIDR (in cluster mode the Node objects' addresses are trusted too)",
		func(c *Config) *[]string { return &c.RestorePeers }).flagOnly(),
	bind("node-ip", "", "IP address the node reports (default: the first global address of an interface that is up)", stringFlag,
		func(c *Config) *string { return &c.NodeIP }).flagOnly(),
	bind("kubeconfig", "", "Join the cluster this kubeconfig points at as a node (registration, lease, node status)", stringFlag,
		func(c *Config) *string { return &c.Kubeconfig }).flagOnly(),
	mapping("node-labels", "Labels added to the Node object, key=value pairs",
		func(c *Config) *map[string]string { return &c.NodeLabels }).flagOnly(),
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

	bind("seccomp-default", false, "Give containers without a seccomp profile the runtime's default profile (RuntimeDefault) instead of none", boolFlag,
		func(c *Config) *bool { return &c.SeccompDefault }).inFilePtr("seccompDefault", func(k *kubeletConfig) **bool { return &k.SeccompDefault }, nil, true),
	list("allowed-unsafe-sysctls", "Sysctls (or prefixes ending in '*') pods may set besides the safe set, e.g. 'kernel.msg*,net.core.somaxconn'; only namespaced ones",
		func(c *Config) *[]string { return &c.AllowedUnsafeSysctls }).inFile("allowedUnsafeSysctls", func(k *kubeletConfig) *[]string { return &k.AllowedUnsafeSysctls }, true),

	// Only the file has these.
	{field: "fileCheckFrequency",
		initial: func(c *Config) { c.FileCheckFrequency = DefaultFileCheckFrequency },
		fromFile: func(dst *Config, kc *kubeletConfig) error {
			if v := kc.FileCheckFrequency.Duration; v != 0 {
				dst.FileCheckFrequency = v
			}
			return nil
		},
		toFile: func(kc *kubeletConfig, c *Config) {
			kc.FileCheckFrequency = metav1.Duration{Duration: c.FileCheckFrequency}
		}},
	{field: "userNamespaces.idsPerPod",
		fromFile: func(dst *Config, kc *kubeletConfig) error {
			if kc.UserNamespaces == nil || kc.UserNamespaces.IDsPerPod == nil {
				return nil
			}
			// The kubelet's validation.
			const unit = 65536
			switch v := *kc.UserNamespaces.IDsPerPod; {
			case v < unit:
				return fmt.Errorf("invalid configuration: userNamespaces.idsPerPod must not be less than %d", unit)
			case v%unit != 0:
				return fmt.Errorf("invalid configuration: userNamespaces.idsPerPod must be a multiple of %d", unit)
			case v > math.MaxUint32:
				return fmt.Errorf("invalid configuration: userNamespaces.idsPerPod must not be more than %d", int64(math.MaxUint32))
			default:
				dst.UserNamespacesIDsPerPod = v
			}
			return nil
		},
		toFile: func(kc *kubeletConfig, c *Config) {
			if v := c.UserNamespacesIDsPerPod; v != 0 {
				kc.UserNamespaces = &kubeletv1beta1.UserNamespaces{IDsPerPod: &v}
			}
		}},
	{field: "cgroupDriver",
		fromFile: func(dst *Config, kc *kubeletConfig) error {
			if kc.CgroupDriver != "" {
				dst.CgroupDriver = kc.CgroupDriver
			}
			return nil
		},
		// Validate admits only cgroupfs.
		toFile: func(kc *kubeletConfig, _ *Config) { kc.CgroupDriver = "cgroupfs" }},
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
	kc.Authentication.X509.ClientCAFile = clientCAFile
	return kc
}
