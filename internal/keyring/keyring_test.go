package keyring

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestRepository(t *testing.T) {
	for image, want := range map[string]string{
		"busybox":                         "docker.io/library/busybox",
		"busybox:1.36":                    "docker.io/library/busybox",
		"team/app:v1":                     "docker.io/team/app",
		"docker.io/busybox":               "docker.io/library/busybox",
		"index.docker.io/team/app":        "docker.io/team/app",
		"127.0.0.1:5000/knode/busybox:1":  "127.0.0.1:5000/knode/busybox",
		"localhost/app@sha256:abcd":       "localhost/app",
		"registry.example.com/a/b/c:tag":  "registry.example.com/a/b/c",
		"Registry.Example.com/app":        "Registry.Example.com/app",
		"host:5000/app:1@sha256:abcdef12": "host:5000/app",
	} {
		got, err := Repository(image)
		if err != nil || got != want {
			t.Errorf("Repository(%q) = %q, %v; want %q", image, got, err, want)
		}
	}
	for _, bad := range []string{"", "Busybox", "example.com/App", "example.com/"} {
		if got, err := Repository(bad); err == nil {
			t.Errorf("Repository(%q) = %q, want an error", bad, got)
		}
	}
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		key, repo string
		want      bool
	}{
		{"registry.example.com", "registry.example.com/app", true},
		{"registry.example.com", "other.example.com/app", false},
		{"*.example.com", "registry.example.com/app", true},
		{"*.example.com", "a.b.example.com/app", false}, // one label per glob
		{"*.example.com", "example.com/app", false},
		{"registry.*.com", "registry.example.com/app", true},
		{"reg*.example.com", "registry.example.com/app", true},
		{"registry.example.com:5000", "registry.example.com:5000/app", true},
		{"registry.example.com:5000", "registry.example.com/app", false},
		{"registry.example.com", "registry.example.com:5000/app", false},
		{"registry.example.com/team", "registry.example.com/team/app", true},
		{"registry.example.com/team", "registry.example.com/other/app", false},
		{"127.0.0.1:5000", "127.0.0.1:5000/knode/busybox", true},
	} {
		if got := matches(tc.key, tc.repo); got != tc.want {
			t.Errorf("matches(%q, %q) = %v, want %v", tc.key, tc.repo, got, tc.want)
		}
	}
}

func TestRegistryKey(t *testing.T) {
	for loc, want := range map[string]string{
		"registry.example.com":             "registry.example.com",
		"https://registry.example.com/v2/": "registry.example.com",
		"https://index.docker.io/v1/":      "index.docker.io",
		"http://host:5000/team":            "host:5000/team",
		"host:5000/v2/team":                "host:5000/team",
	} {
		if got, ok := registryKey(loc); !ok || got != want {
			t.Errorf("registryKey(%q) = %q, %v; want %q", loc, got, ok, want)
		}
	}
}

// The most specific key comes first, a plain host before a glob, secrets
// in the order added within one key; Docker Hub's key serves Hub images
// only when nothing else matched.
func TestLookupOrder(t *testing.T) {
	var k Keyring
	k.Add(Config{
		"registry.example.com":        {Username: "host"},
		"registry.example.com/team":   {Username: "team"},
		"*.example.com":               {Username: "glob"},
		"https://index.docker.io/v1/": {Username: "hub"},
	})
	k.Add(Config{"registry.example.com": {Username: "second-secret"}})
	names := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Username)
		}
		return out
	}
	for repo, want := range map[string][]string{
		"registry.example.com/team/app": {"team", "host", "second-secret", "glob"},
		"registry.example.com/app":      {"host", "second-secret", "glob"},
		"other.example.com/app":         {"glob"},
		"docker.io/library/busybox":     {"hub"},
		"quay.io/app":                   nil,
	} {
		if got := names(k.Lookup(repo)); !reflect.DeepEqual(got, want) {
			t.Errorf("Lookup(%q) = %v, want %v", repo, got, want)
		}
	}
}

func TestFromSecret(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("user:pa:ss"))
	cfg, err := FromSecret(Secret{Name: "a", Type: v1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{v1.DockerConfigJsonKey: []byte(`{"auths":{"r.example.com":{"auth":"` + auth + `"}}}`)}})
	if e := cfg["r.example.com"]; err != nil || e.Username != "user" || e.Password != "pa:ss" || e.Source == nil || e.Source.Name != "a" {
		t.Errorf("dockerconfigjson: %v, %v", cfg, err)
	}
	cfg, err = FromSecret(Secret{Name: "b", Type: v1.SecretTypeDockercfg,
		Data: map[string][]byte{v1.DockerConfigKey: []byte(`{"r.example.com":{"username":"u","password":"p"}}`)}})
	if e := cfg["r.example.com"]; err != nil || e.Username != "u" || e.Password != "p" {
		t.Errorf("dockercfg: %v, %v", cfg, err)
	}
	// Another type, or the key under the wrong type, gives nothing.
	for _, s := range []Secret{
		{Type: v1.SecretTypeOpaque, Data: map[string][]byte{v1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}},
		{Type: v1.SecretTypeDockercfg, Data: map[string][]byte{v1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}},
	} {
		if cfg, err := FromSecret(s); len(cfg) != 0 || err != nil {
			t.Errorf("FromSecret(%v) = %v, %v; want nothing", s.Type, cfg, err)
		}
	}
	if _, err := FromSecret(Secret{Name: "bad", Type: v1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{v1.DockerConfigJsonKey: []byte(`{`)}}); err == nil {
		t.Error("a secret that does not parse gave no error")
	}
	if _, err := ParseConfigJSON([]byte(`{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}`)); err == nil {
		t.Error(`an auth field without ':' gave no error`)
	}
}

func TestNodeConfig(t *testing.T) {
	root, home := t.TempDir(), t.TempDir()
	files := NodeSearchPaths(root, home)
	if cfg, path, err := NodeConfig(files); cfg != nil || path != "" || err != nil {
		t.Fatalf("no files: %v %q %v", cfg, path, err)
	}
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(home, ".docker", "config.json"), `{"auths":{"home.example.com":{"username":"h"}}}`)
	cfg, path, err := NodeConfig(files)
	if err != nil || cfg["home.example.com"].Username != "h" || path != filepath.Join(home, ".docker", "config.json") {
		t.Fatalf("home config: %v %q %v", cfg, path, err)
	}
	// The root dir comes first; a broken file there is passed over.
	write(filepath.Join(root, "config.json"), `{broken`)
	if cfg, _, _ := NodeConfig(files); cfg["home.example.com"].Username != "h" {
		t.Fatalf("a broken root-dir config hid the next one: %v", cfg)
	}
	write(filepath.Join(root, "config.json"), `{"auths":{"root.example.com":{"username":"r"}}}`)
	if cfg, path, _ := NodeConfig(files); cfg["root.example.com"].Username != "r" || path != filepath.Join(root, "config.json") {
		t.Fatalf("root dir config not first: %v %q", cfg, path)
	}
}
