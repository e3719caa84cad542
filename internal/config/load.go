package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	cliflag "k8s.io/component-base/cli/flag"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"
)

// Flags holds the command-line values before they are merged with the
// file: the settings table's flags bound to a Config of their own, and the
// few flags that need parsing beyond their type.
type Flags struct {
	ConfigFile              string
	HostnameOverride        string
	FeatureGates            map[string]bool
	EvictionHard            string
	ContainerLogMaxSize     string
	CheckpointMaxTotalBytes string
	// values holds every flag of the settings table.
	values Config
}

// AddFlags registers the kubelet's flag names (where knode has the concept)
// and knode's own on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.ConfigFile, "config", "", "KubeletConfiguration (kubelet.config.k8s.io/v1beta1) file; flags override it")
	fs.StringVar(&f.HostnameOverride, "hostname-override", "", "Node name to use instead of the host name")
	fs.Var(cliflag.NewMapStringBool(&f.FeatureGates), "feature-gates", "key=value pairs of feature gates; known: "+strings.Join(KnownGates(), ", "))
	fs.StringVar(&f.EvictionHard, "eviction-hard", "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%", "Hard eviction thresholds: the node's MemoryPressure and DiskPressure, and evictions under memory pressure")
	fs.StringVar(&f.ContainerLogMaxSize, "container-log-max-size", "10Mi", "Size at which a container's log is rotated")
	fs.StringVar(&f.CheckpointMaxTotalBytes, "checkpoint-max-total-bytes", "20Gi", "Byte budget of the checkpoints directory, oldest deleted first (0 = no limit)")
	for _, s := range settings {
		if s.register != nil {
			s.register(fs, &f.values)
		}
	}
}

// supportedFileFields are the KubeletConfiguration fields knode implements,
// as dotted JSON paths; a set field outside this list gets a warning.
var supportedFileFields = fileFields()

func fileFields() map[string]bool {
	fields := map[string]bool{
		"apiVersion": true, "kind": true,
		// Merged in Load: they need parsing or merging beyond a copy.
		"featureGates": true, "containerLogMaxSize": true, "evictionHard": true,
	}
	for _, s := range settings {
		if s.field != "" {
			fields[s.field] = true
		}
	}
	return fields
}

// Load merges defaults, the --config file and the flags the operator set.
// It returns the configuration and one warning per unsupported file field.
func Load(fs *pflag.FlagSet, f *Flags) (*Config, []string, error) {
	// Every flag's value (its default unless set), then the file, then the
	// flags the operator set.
	cfg := &Config{FileCheckFrequency: DefaultFileCheckFrequency}
	for _, s := range settings {
		if s.copy != nil {
			s.copy(cfg, &f.values)
		}
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
	for _, s := range settings {
		if s.fromFile != nil {
			s.fromFile(cfg, kc)
		}
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
	for _, s := range settings {
		if s.flag != "" && s.copy != nil && fs.Changed(s.flag) {
			s.copy(cfg, &f.values)
		}
	}
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
