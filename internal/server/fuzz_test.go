package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
)

// FuzzRequestParsing feeds arbitrary paths and queries through the parts of
// the server that read client input before any handler: the authorization
// attributes (routed through the real mux), the path parameter validation and the log query parser. None
// may panic; accepted names must be clean; the subresource must come from
// the kubelet's fixed set.
func FuzzRequestParsing(f *testing.F) {
	seeds := []struct{ method, path, query string }{
		{"GET", "/pods", ""},
		{"POST", "/checkpoint/default/web/app", "timeout=10&timeout=20"},
		{"GET", "/containerLogs/kube-system/etcd-node1/etcd", "tailLines=10&follow=true"},
		{"GET", "/containerLogs/a%2Fb/../c", "sinceTime=2024-01-01T00:00:00Z&sinceSeconds=1"},
		{"DELETE", "/checkpoints/checkpoint-web_default-app-2024-01-01T00:00:00Z.tar", ""},
		{"GET", "/stats/summary", "limitBytes=-1"},
		{"PATCH", "/metrics/\x00", "previous=maybe"},
		{"GET", "//logs//", "tailLines=99999999999999999999"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query)
	}
	allowed := map[string]bool{"stats": true, "metrics": true, "log": true, "checkpoint": true, "proxy": true,
		"pods": true, "healthz": true, "configz": true, "statusz": true}
	verbs := map[string]bool{"get": true, "create": true, "update": true, "patch": true, "delete": true, "": true}
	srv := fullServer()
	f.Fuzz(func(t *testing.T, method, path, query string) {
		pattern := ""
		if r, err := http.NewRequest(method, "https://node"+path, nil); err == nil {
			_, pattern = srv.secure.Handler(r)
		}
		attrs := Attributes(&user.DefaultInfo{Name: "u"}, method, path, pattern, "node")
		if len(attrs) == 0 {
			t.Fatalf("no authorization check for %s %q", method, path)
		}
		for i, a := range attrs {
			if !allowed[a.Subresource] || !verbs[a.Verb] || a.Resource != "nodes" || a.Name != "node" {
				t.Fatalf("attributes for %q: %+v", path, a)
			}
			// Only proxy, the kubelet's catch-all, may come after another.
			if i > 0 && a.Subresource != "proxy" {
				t.Fatalf("fallback %q for %s %q", a.Subresource, method, path)
			}
		}
		parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 4)
		for len(parts) < 4 {
			parts = append(parts, "x")
		}
		if err := validatePodRef(parts[1], parts[2], parts[3]); err == nil {
			for _, p := range parts[1:] {
				if strings.ContainsAny(p, "/\x00\\") || strings.Contains(p, "..") || len(p) > maxParamLen {
					t.Fatalf("accepted unsafe name %q", p)
				}
			}
		}
		if len(query) > 4096 {
			return
		}
		r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: query}}
		opts, err := parseLogOptions(r)
		if err == nil {
			if opts.TailLines != nil && *opts.TailLines < 0 || opts.LimitBytes != nil && *opts.LimitBytes < 1 {
				t.Fatalf("accepted invalid options from %q", query)
			}
		}
	})
}
