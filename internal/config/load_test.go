package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func load(t *testing.T, file string, args ...string) (*Config, []string, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f := &Flags{}
	f.AddFlags(fs)
	if file != "" {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	if err := fs.Parse(append(args, "--hostname-override", "Node-A")); err != nil {
		t.Fatal(err)
	}
	return Load(fs, f)
}

const header = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"

// standalone is a file for a node without --kubeconfig: the kubelet's
// v1beta1 defaults (webhook authentication and authorization) need an API
// server, so such a file says what to do instead.
const standalone = header + "authorization:\n  mode: AlwaysAllow\n"
const standaloneAuthn = "  webhook:\n    enabled: false\n"

func TestLoad(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		args     []string
		check    func(t *testing.T, c *Config)
		warnings []string
		err      string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c *Config) {
				if c.RootDir != "/var/lib/kubelet" || c.Port != 10250 || c.RuntimeRequestTimeout != 2*time.Minute ||
					c.AuthorizationMode != "AlwaysAllow" || c.AnonymousAuth || !c.FeatureGates.Enabled(ContainerCheckpoint) {
					t.Fatalf("unexpected defaults: %+v", c)
				}
				if c.NodeName != "node-a" {
					t.Fatalf("node name %q, want the override lower-cased", c.NodeName)
				}
			},
		},
		{
			name: "file values apply",
			file: standalone + "staticPodPath: /etc/manifests\nport: 11250\nruntimeRequestTimeout: 30s\nauthentication:\n" + standaloneAuthn + "  anonymous:\n    enabled: true\n  x509:\n    clientCAFile: /ca.crt\nfeatureGates:\n  ContainerCheckpoint: false\n",
			check: func(t *testing.T, c *Config) {
				if c.PodManifestPath != "/etc/manifests" || c.Port != 11250 || c.RuntimeRequestTimeout != 30*time.Second ||
					!c.AnonymousAuth || c.ClientCAFile != "/ca.crt" || c.FeatureGates.Enabled(ContainerCheckpoint) {
					t.Fatalf("file not applied: %+v", c)
				}
			},
		},
		{
			name: "flags override the file",
			file: standalone + "authentication:\n" + standaloneAuthn + "staticPodPath: /etc/manifests\nport: 11250\nfeatureGates:\n  ContainerCheckpoint: false\n",
			args: []string{"--pod-manifest-path", "/other", "--port", "12000", "--feature-gates", "ContainerCheckpoint=true"},
			check: func(t *testing.T, c *Config) {
				if c.PodManifestPath != "/other" || c.Port != 12000 || !c.FeatureGates.Enabled(ContainerCheckpoint) {
					t.Fatalf("flags did not win: %+v", c)
				}
			},
		},
		{
			name: "a flag left at its default does not override the file",
			file: standalone + "authentication:\n" + standaloneAuthn + "port: 11250\n",
			args: []string{"--root-dir", "/tmp/x"},
			check: func(t *testing.T, c *Config) {
				if c.Port != 11250 {
					t.Fatalf("port = %d, want the file's 11250", c.Port)
				}
			},
		},
		{
			name:     "unsupported fields are named",
			file:     standalone + "registryBurst: 50\nauthentication:\n  webhook:\n    enabled: false\n    cacheTTL: 2m\n  anonymous:\n    enabled: false\nevictionSoft:\n  memory.available: 200Mi\n",
			warnings: []string{`"authentication.webhook.cacheTTL"`, `"evictionSoft"`, `"registryBurst"`},
		},
		{name: "a pid reservation is refused, not dropped", args: []string{"--kube-reserved", "cpu=100m,pid=1000"}, err: "knode does not limit the pods' process IDs"},
		{name: "unknown feature gate", args: []string{"--feature-gates", "NoSuchGate=true"}, err: "unrecognized feature gate"},
		{name: "UserNamespacesSupport is locked on", args: []string{"--feature-gates", "UserNamespacesSupport=false"}, err: "UserNamespacesSupport"},
		{name: "UserNamespacesSupport named on", args: []string{"--feature-gates", "UserNamespacesSupport=true"},
			check: func(t *testing.T, c *Config) {
				if !c.FeatureGates.Enabled(UserNamespacesSupport) {
					t.Fatal("UserNamespacesSupport off")
				}
			}},
		{name: "wrong kind", file: "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: Pod\n", err: "want apiVersion"},
		{name: "unknown field is an error", file: header + "staticPodPth: /x\n", err: "unknown field"},
		{name: "bad authorization mode", args: []string{"--authorization-mode", "RBAC"}, err: "not supported"},
		{name: "webhook authorization needs a cluster", args: []string{"--authorization-mode", "Webhook"}, err: "needs --kubeconfig"},
		{name: "non-positive runtime timeout", args: []string{"--runtime-request-timeout", "0s"}, err: "must be positive"},
		{
			name: "container log limits from the file, size overridden by the flag",
			file: standalone + "authentication:\n" + standaloneAuthn + "containerLogMaxSize: 20Mi\ncontainerLogMaxFiles: 3\n",
			args: []string{"--container-log-max-size", "1Mi"},
			check: func(t *testing.T, c *Config) {
				if c.ContainerLogMaxSize != 1<<20 || c.ContainerLogMaxFiles != 3 {
					t.Fatalf("log limits %d bytes, %d files; want 1Mi and 3", c.ContainerLogMaxSize, c.ContainerLogMaxFiles)
				}
			},
		},
		{
			name: "container log limits default to the kubelet's",
			check: func(t *testing.T, c *Config) {
				if c.ContainerLogMaxSize != 10<<20 || c.ContainerLogMaxFiles != 5 {
					t.Fatalf("log limits %d bytes, %d files; want 10Mi and 5", c.ContainerLogMaxSize, c.ContainerLogMaxFiles)
				}
			},
		},
		{
			name: "user namespace IDs per pod from the file",
			file: standalone + "authentication:\n" + standaloneAuthn + "userNamespaces:\n  idsPerPod: 131072\n",
			check: func(t *testing.T, c *Config) {
				if c.UserNamespacesIDsPerPod != 131072 {
					t.Fatalf("idsPerPod %d, want 131072", c.UserNamespacesIDsPerPod)
				}
			},
		},
		{name: "user namespace IDs per pod not a multiple of 65536", file: standalone + "authentication:\n" + standaloneAuthn + "userNamespaces:\n  idsPerPod: 70000\n",
			err: "userNamespaces.idsPerPod must be a multiple of 65536"},
		{name: "user namespace IDs per pod too few", file: standalone + "authentication:\n" + standaloneAuthn + "userNamespaces:\n  idsPerPod: 1000\n",
			err: "userNamespaces.idsPerPod must not be less than 65536"},
		{name: "bad container log size in the file", file: standalone + "authentication:\n" + standaloneAuthn + "containerLogMaxSize: lots\n",
			err: `containerLogMaxSize "lots"`},
		{
			name: "eviction thresholds: the default, unless the file sets them",
			check: func(t *testing.T, c *Config) {
				if len(c.EvictionHard) != 3 || c.EvictionHard["memory.available"] != "100Mi" || c.EvictionHard["nodefs.available"] != "10%" {
					t.Fatalf("eviction thresholds %v, want the kubelet's defaults", c.EvictionHard)
				}
			},
		},
		{
			name: "eviction thresholds from the file replace the default",
			file: standalone + "authentication:\n" + standaloneAuthn + "evictionHard:\n  memory.available: 1Gi\n",
			check: func(t *testing.T, c *Config) {
				if len(c.EvictionHard) != 1 || c.EvictionHard["memory.available"] != "1Gi" {
					t.Fatalf("eviction thresholds %v, want the file's", c.EvictionHard)
				}
			},
		},
		{
			name: "eviction thresholds from the flag win over the file",
			file: standalone + "authentication:\n" + standaloneAuthn + "evictionHard:\n  memory.available: 1Gi\n",
			args: []string{"--eviction-hard", "memory.available<2Gi, nodefs.available<5%"},
			check: func(t *testing.T, c *Config) {
				if len(c.EvictionHard) != 2 || c.EvictionHard["memory.available"] != "2Gi" || c.EvictionHard["nodefs.available"] != "5%" {
					t.Fatalf("eviction thresholds %v, want the flag's", c.EvictionHard)
				}
			},
		},
		{
			name: "checkpoint budget as a quantity",
			args: []string{"--checkpoint-max-total-bytes", "1Gi"},
			check: func(t *testing.T, c *Config) {
				if c.CheckpointMaxTotalBytes != 1<<30 {
					t.Fatalf("checkpoint budget %d, want 1Gi", c.CheckpointMaxTotalBytes)
				}
			},
		},
		{
			name: "the config file is named by its flag",
			file: standalone + "authentication:\n" + standaloneAuthn,
			check: func(t *testing.T, c *Config) {
				if c.ConfigFile == "" {
					t.Fatal("the config file read is not recorded")
				}
			},
		},
		{name: "one log file", args: []string{"--container-log-max-files", "1"}, err: "at least 2"},
		{name: "non-positive sync frequency", args: []string{"--sync-frequency", "0s"}, err: "--sync-frequency must be positive"},
		{
			name: "sync frequency from the file, then the flag",
			file: standalone + "authentication:\n" + standaloneAuthn + "syncFrequency: 30s\n",
			args: []string{"--sync-frequency", "5s"},
			check: func(t *testing.T, c *Config) {
				if c.SyncFrequency != 5*time.Second {
					t.Fatalf("sync frequency = %s, want the flag's 5s", c.SyncFrequency)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, warnings, err := load(t, tt.file, tt.args...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != len(tt.warnings) {
				t.Fatalf("warnings = %q, want %d naming %q", warnings, len(tt.warnings), tt.warnings)
			}
			for i, w := range tt.warnings {
				if !strings.Contains(warnings[i], w) {
					t.Fatalf("warning %d = %q, want it to name %s", i, warnings[i], w)
				}
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

// TestFlagValuesParsedWithTheFlag: a flag whose value needs parsing beyond
// its type (quantities, thresholds, feature gates) refuses a bad value
// when the flags are parsed, naming the flag.
func TestFlagValuesParsedWithTheFlag(t *testing.T) {
	for _, tt := range []struct{ args []string }{
		{[]string{"--container-log-max-size", "lots"}},
		{[]string{"--checkpoint-max-total-bytes", "all"}},
		{[]string{"--eviction-hard", "memory.available=100Mi"}},
		{[]string{"--feature-gates", "ContainerCheckpoint=maybe"}},
	} {
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		(&Flags{}).AddFlags(fs)
		err := fs.Parse(tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.args[0]) {
			t.Errorf("%v: %v, want an error naming %s", tt.args, err, tt.args[0])
		}
	}
}

// TestFeatureGatesMergeKeyByKey: the flag's gates override the file's one
// by one, as the kubelet merges them.
func TestFeatureGatesMergeKeyByKey(t *testing.T) {
	c, _, err := load(t, standalone+"authentication:\n"+standaloneAuthn+"featureGates:\n  ContainerCheckpoint: false\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.FeatureGates.Enabled(ContainerCheckpoint) {
		t.Fatal("the file's gate was not applied")
	}
	c, _, err = load(t, standalone+"authentication:\n"+standaloneAuthn+"featureGates:\n  ContainerCheckpoint: false\n",
		"--feature-gates", "ContainerCheckpoint=true")
	if err != nil {
		t.Fatal(err)
	}
	if !c.FeatureGates.Enabled(ContainerCheckpoint) {
		t.Fatal("the flag's gate did not win over the file's")
	}
	if _, _, err := load(t, standalone+"authentication:\n"+standaloneAuthn+"featureGates:\n  NoSuchGate: true\n"); err == nil ||
		!strings.Contains(err.Error(), "unrecognized feature gate") {
		t.Fatalf("an unknown gate in the file: %v", err)
	}
}

// TestEveryFlagIsARow: every flag config registers, and every file field
// it reads, is one row of the settings table.
func TestEveryFlagIsARow(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	(&Flags{}).AddFlags(fs)
	rows := map[string]bool{}
	for _, s := range settings {
		if s.flag != "" {
			if rows[s.flag] {
				t.Errorf("--%s has two rows", s.flag)
			}
			rows[s.flag] = true
		}
		if s.field != "" && s.fromFile == nil {
			t.Errorf("field %s has a row that does not read it", s.field)
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !rows[f.Name] {
			t.Errorf("--%s is registered outside the settings table", f.Name)
		}
	})
}

// TestFileAuthDefaults: a KubeletConfiguration gets the kubelet's v1beta1
// authentication and authorization defaults; where they cannot work (no
// --kubeconfig) knode refuses to start and names the field to set; flags
// keep their defaults and win over the file.
func TestFileAuthDefaults(t *testing.T) {
	const (
		needWebhookOff = "authentication.webhook.enabled: false"
		needAllow      = "authorization.mode: AlwaysAllow"
	)
	type want struct {
		webhook, anonymous bool
		mode               string
	}
	tests := []struct {
		name    string
		file    string
		args    []string
		want    want
		errHas  []string
		errNot  []string
		noError bool
	}{
		{name: "flags only: the flags' defaults, as before", noError: true,
			want: want{webhook: false, anonymous: false, mode: "AlwaysAllow"}},
		{name: "a file without auth in cluster mode: webhook authentication and authorization, no anonymous",
			file: header, args: []string{"--kubeconfig", "/etc/knode/kubeconfig"}, noError: true,
			want: want{webhook: true, anonymous: false, mode: "Webhook"}},
		{name: "a file without auth and without --kubeconfig is refused, naming both fields",
			file: header, errHas: []string{needWebhookOff, needAllow, "--kubeconfig"}},
		{name: "only the field still missing is named (authorization)",
			file: header + "authentication:\n  webhook:\n    enabled: false\n", errHas: []string{needAllow}, errNot: []string{needWebhookOff}},
		{name: "only the field still missing is named (authentication)",
			file: header + "authorization:\n  mode: AlwaysAllow\n", errHas: []string{needWebhookOff}, errNot: []string{needAllow}},
		{name: "Webhook set explicitly in the file without --kubeconfig",
			file: header + "authentication:\n  webhook:\n    enabled: false\nauthorization:\n  mode: Webhook\n", errHas: []string{needAllow}},
		{name: "flags win over the file's defaults",
			file: header, args: []string{"--authentication-token-webhook=false", "--authorization-mode", "AlwaysAllow"}, noError: true,
			want: want{webhook: false, anonymous: false, mode: "AlwaysAllow"}},
		{name: "the file's explicit values",
			file: header + "authentication:\n  webhook:\n    enabled: false\n  anonymous:\n    enabled: true\nauthorization:\n  mode: AlwaysAllow\n", noError: true,
			want: want{webhook: false, anonymous: true, mode: "AlwaysAllow"}},
		{name: "--anonymous-auth over the file's default",
			file: header, args: []string{"--kubeconfig", "/k", "--anonymous-auth"}, noError: true,
			want: want{webhook: true, anonymous: true, mode: "Webhook"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := load(t, tt.file, tt.args...)
			if tt.noError {
				if err != nil {
					t.Fatal(err)
				}
				got := want{webhook: c.AuthenticationTokenWebhook, anonymous: c.AnonymousAuth, mode: c.AuthorizationMode}
				if got != tt.want {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("loaded %+v, want a refusal", c)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("error %q does not name %q", err, s)
				}
			}
			for _, s := range tt.errNot {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error %q names %q, which is already set", err, s)
				}
			}
		})
	}
}
