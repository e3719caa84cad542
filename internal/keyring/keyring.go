// Package keyring picks the registry credentials for an image pull by the
// kubelet's rules (pkg/credentialprovider): the pod's image pull secrets
// (kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg) first, then
// the node's own Docker config files; within one keyring the most specific
// registry key first (hosts may carry '*' globs, a port and a path prefix).
// Every match is returned in that order; the caller tries each until a
// pull succeeds, as the kubelet does.
package keyring

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Config is a Docker config's credentials by registry key
// ("registry.example.com", "registry.example.com:5000/team", "*.example.com").
type Config map[string]Entry

// Entry is one credential of a Docker config.
type Entry struct {
	Username string
	Password string
	Email    string
	// Source is the pull secret the credential came from; nil for the
	// node's own files.
	Source *SecretRef `json:"-"`
}

// SecretRef names a pull secret, to tell which pods may use an image
// pulled with it.
type SecretRef struct {
	Namespace, Name, UID string
}

// Hash identifies a credential without keeping it: pods whose secrets
// hold the same credential may use what it pulled.
func (e Entry) Hash() string {
	sum := sha256.Sum256([]byte(e.Username + "\x00" + e.Password))
	return hex.EncodeToString(sum[:])
}

// UnmarshalJSON accepts both the username/password form and the base64
// "auth" form ("user:password"), which wins when present, as in the kubelet.
func (e *Entry) UnmarshalJSON(data []byte) error {
	var raw struct {
		Username string `json:"username,omitempty"`
		Password string `json:"password,omitempty"`
		Email    string `json:"email,omitempty"`
		Auth     string `json:"auth,omitempty"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	e.Username, e.Password, e.Email = raw.Username, raw.Password, raw.Email
	if raw.Auth == "" {
		return nil
	}
	decoded, err := base64.StdEncoding.DecodeString(raw.Auth)
	if err != nil {
		return fmt.Errorf("decode auth field: %w", err)
	}
	user, pass, ok := strings.Cut(string(decoded), ":")
	if !ok {
		return errors.New("unable to parse auth field")
	}
	e.Username, e.Password = user, pass
	return nil
}

// ParseConfigJSON reads a config.json / .dockerconfigjson document ({"auths": {...}}).
func ParseConfigJSON(data []byte) (Config, error) {
	var doc struct {
		Auths Config `json:"auths"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	return doc.Auths, nil
}

// ParseDockercfg reads a legacy .dockercfg document (the credentials at the top level).
func ParseDockercfg(data []byte) (Config, error) {
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Secret is an image pull secret as read from the API server.
type Secret struct {
	Namespace, Name, UID string
	Type                 v1.SecretType
	Data                 map[string][]byte
}

// FromSecret reads the credentials of a pull secret, each marked with the
// secret; a secret of another type, or without its key, gives none (the
// kubelet skips it), one whose document does not parse is an error.
func FromSecret(s Secret) (Config, error) {
	cfg, err := parseSecret(s)
	for k, e := range cfg {
		e.Source = &SecretRef{Namespace: s.Namespace, Name: s.Name, UID: s.UID}
		cfg[k] = e
	}
	return cfg, err
}

func parseSecret(s Secret) (Config, error) {
	switch {
	case s.Type == v1.SecretTypeDockerConfigJson && len(s.Data[v1.DockerConfigJsonKey]) > 0:
		cfg, err := ParseConfigJSON(s.Data[v1.DockerConfigJsonKey])
		if err != nil {
			return nil, fmt.Errorf("image pull secret %s: %w", s.Name, err)
		}
		return cfg, nil
	case s.Type == v1.SecretTypeDockercfg && len(s.Data[v1.DockerConfigKey]) > 0:
		cfg, err := ParseDockercfg(s.Data[v1.DockerConfigKey])
		if err != nil {
			return nil, fmt.Errorf("image pull secret %s: %w", s.Name, err)
		}
		return cfg, nil
	}
	return nil, nil
}

// Keyring indexes credentials by registry key; the zero value is empty.
type Keyring struct {
	index []string
	creds map[string][]Entry
}

// Add adds a config's credentials after those already added: for one key,
// earlier credentials are tried first.
func (k *Keyring) Add(cfg Config) {
	if k.creds == nil {
		k.creds = map[string][]Entry{}
	}
	// Map order is random: add keys sorted so the result never depends on it.
	locs := make([]string, 0, len(cfg))
	for loc := range cfg {
		locs = append(locs, loc)
	}
	sort.Strings(locs)
	for _, loc := range locs {
		key, ok := registryKey(loc)
		if !ok {
			continue
		}
		k.creds[key] = append(k.creds[key], cfg[loc])
		if !slices.Contains(k.index, key) {
			k.index = append(k.index, key)
		}
	}
	// Reverse order puts longer keys (more specific paths) before their
	// prefixes and plain hosts before globs of the same prefix.
	sort.Sort(sort.Reverse(sort.StringSlice(k.index)))
}

// registryKey is a config location as the kubelet indexes it: scheme
// dropped, host with port, path kept unless it is the /v1/ or /v2/ API root.
func registryKey(loc string) (string, bool) {
	value := loc
	if !strings.HasPrefix(value, "https://") && !strings.HasPrefix(value, "http://") {
		value = "https://" + value
	}
	parsed, err := url.Parse(value)
	if err != nil || parsed.Host == "" {
		return "", false
	}
	path := parsed.Path
	if strings.HasPrefix(path, "/v2/") || strings.HasPrefix(path, "/v1/") {
		path = path[3:]
	}
	if path != "" && path != "/" {
		return parsed.Host + path, true
	}
	return parsed.Host, true
}

// defaultRegistryKey is where Docker Hub's credentials are filed.
const defaultRegistryKey = "index.docker.io"

// Lookup returns the credentials that match repo (a normalized repository,
// see Repository), most specific key first.
func (k *Keyring) Lookup(repo string) []Entry {
	var out []Entry
	for _, key := range k.index {
		if matches(key, repo) {
			out = append(out, k.creds[key]...)
		}
	}
	if len(out) == 0 && isDefaultRegistry(repo) {
		out = append(out, k.creds[defaultRegistryKey]...)
	}
	return out
}

// matches tells whether repo falls under a registry key: the same number
// of host labels each matching the key's (globs allowed in the host only),
// the same port, and the key's path a prefix of repo's.
func matches(key, repo string) bool {
	g, err := url.Parse("https://" + key)
	if err != nil {
		return false
	}
	r, err := url.Parse("https://" + repo)
	if err != nil {
		return false
	}
	gParts, gPort := splitHost(g.Host)
	rParts, rPort := splitHost(r.Host)
	if gPort != rPort || len(gParts) != len(rParts) || !strings.HasPrefix(r.Path, g.Path) {
		return false
	}
	for i := range gParts {
		if ok, err := filepath.Match(gParts[i], rParts[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

func splitHost(hostport string) ([]string, string) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	return strings.Split(host, "."), port
}

// isDefaultRegistry tells a Docker Hub repository by the kubelet's rule.
func isDefaultRegistry(repo string) bool {
	first, _, found := strings.Cut(repo, "/")
	if first == "" {
		return false
	}
	if !found || first == "docker.io" || first == "index.docker.io" {
		return true
	}
	return !strings.ContainsAny(first, ".:")
}

// Repository is the repository an image reference pulls from, normalized
// as the kubelet's lookup sees it: the tag and digest dropped, Docker Hub
// names given their domain docker.io (and library/ for official images).
func Repository(image string) (string, error) {
	name := image
	if i := strings.Index(name, "@"); i >= 0 {
		name = name[:i]
	}
	// A tag follows the last ':' after the last '/'.
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	domain, rest, found := strings.Cut(name, "/")
	if !found || (!strings.ContainsAny(domain, ".:") && domain != "localhost" && strings.ToLower(domain) == domain) {
		domain, rest = "docker.io", name
	}
	if domain == "index.docker.io" {
		domain = "docker.io"
	}
	if domain == "docker.io" && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	// Repository paths are lower case; only the domain may have capitals.
	if rest == "" || strings.HasSuffix(rest, "/") || strings.ToLower(rest) != rest {
		return "", fmt.Errorf("invalid reference format: %q", image)
	}
	return domain + "/" + rest, nil
}

// AuthConfigs turns credentials into CRI auth configs, in order.
func AuthConfigs(entries []Entry) []*runtimeapi.AuthConfig {
	out := make([]*runtimeapi.AuthConfig, 0, len(entries))
	for _, e := range entries {
		out = append(out, &runtimeapi.AuthConfig{Username: e.Username, Password: e.Password})
	}
	return out
}
