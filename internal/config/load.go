package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"
)

// Flags holds the command-line values before they are merged with the
// file: every flag of the settings table, bound to a Config of its own.
type Flags struct {
	values Config
}

// AddFlags registers the kubelet's flag names (where knode has the concept)
// and knode's own on fs: the settings table's flags.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
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
	fields := map[string]bool{"apiVersion": true, "kind": true}
	for _, s := range settings {
		if s.field != "" {
			fields[s.field] = true
		}
	}
	return fields
}

// Load merges defaults, the --config file and the flags the operator set,
// row by row of the settings table: every flag's value (its default unless
// set), then the file's fields, then the flags the operator set, as the
// kubelet does; then what is derived from the merged values. It returns
// the configuration and one warning per unsupported file field.
func Load(fs *pflag.FlagSet, f *Flags) (*Config, []string, error) {
	cfg := &Config{}
	for _, s := range settings {
		if s.initial != nil {
			s.initial(cfg)
		}
		if s.copy != nil {
			s.copy(cfg, &f.values)
		}
	}
	var warnings []string
	if cfg.ConfigFile != "" {
		kc, unsupported, err := ReadFile(cfg.ConfigFile)
		if err != nil {
			return nil, nil, err
		}
		for _, s := range settings {
			if s.fromFile == nil {
				continue
			}
			if err := s.fromFile(cfg, kc); err != nil {
				return nil, nil, fmt.Errorf("config file %s: %w", cfg.ConfigFile, err)
			}
		}
		for _, field := range unsupported {
			warnings = append(warnings, fmt.Sprintf("%s: field %q is not implemented by knode and is ignored", cfg.ConfigFile, field))
		}
	}
	for _, s := range settings {
		if s.flag != "" && s.copy != nil && fs.Changed(s.flag) {
			s.copy(cfg, &f.values)
		}
	}
	if cfg.ConfigFile != "" {
		if err := fileAuthNeedsCluster(fs, cfg.ConfigFile, cfg); err != nil {
			return nil, nil, err
		}
	}
	for _, s := range settings {
		if s.finish != nil {
			if err := s.finish(cfg); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	return cfg, warnings, nil
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
