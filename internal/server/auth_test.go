package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	certutil "k8s.io/client-go/util/cert"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"knode.io/knode/internal/checkpoint"
	"knode.io/knode/internal/devicemanager"
	"knode.io/knode/internal/migrate"
)

// unused stands in for every service behind a route; routing and
// authorization never call it.
type unused struct{}

func (unused) Resolve(string, string, string) (checkpoint.Target, error) {
	return checkpoint.Target{}, errUnused
}
func (unused) Checkpoint(context.Context, checkpoint.Target, int64) (checkpoint.Result, error) {
	return checkpoint.Result{}, errUnused
}
func (unused) List(checkpoint.Filter) ([]checkpoint.Archive, error) { return nil, errUnused }
func (unused) Inspect(string) (*checkpoint.Details, error)          { return nil, errUnused }
func (unused) Delete(string) error                                  { return errUnused }
func (unused) Open(string) (*checkpoint.Content, error)             { return nil, errUnused }
func (unused) Receive(context.Context, migrate.ReceiveRequest) (*migrate.ReceiveResult, error) {
	return nil, errUnused
}
func (unused) Undo(string) error                               { return errUnused }
func (unused) StopPod(string, string) (string, error)          { return "", errUnused }
func (unused) Summary(context.Context, bool) *statsapi.Summary { return nil }
func (unused) Resources() []devicemanager.Resource             { return nil }

var errUnused = errors.New("not used by this test")

// fullServer has every optional route installed.
func fullServer() *Server {
	return New(Config{
		NodeName: "node1", Pods: &fakePods{}, Logs: &fakeLogs{},
		Checkpoints: unused{}, Receiver: unused{}, Stopper: unused{}, Stats: unused{}, Devices: unused{},
		ResourceMetrics: prometheus.NewRegistry(), Streaming: &fakeStreaming{},
	})
}

// TestRouteAuthorization checks routeAuthz row by row through the real
// mux: each request's verb and the subresources it is checked against, in
// order. Every registered route must be covered by a row here and have one
// in routeAuthz, so a new endpoint cannot slip in with a default.
func TestRouteAuthorization(t *testing.T) {
	fine := func(sub string) []string { return []string{sub, "proxy"} }
	only := func(sub string) []string { return []string{sub} }
	tests := []struct {
		method, path string
		route        string // the pattern the mux picks; "" for none
		verb         string
		subresources []string
	}{
		// The kubelet's paths, with its fine-grained subresources and the proxy fallback.
		{"GET", "/healthz", "/healthz", "get", fine("healthz")},
		{"GET", "/healthz/syncloop", "/healthz/{check}", "get", fine("healthz")},
		{"HEAD", "/healthz", "/healthz", "", fine("healthz")},
		{"POST", "/healthz", "/healthz", "create", fine("healthz")},
		{"GET", "/pods", "GET /pods", "get", fine("pods")},
		{"HEAD", "/pods", "GET /pods", "", fine("pods")},
		{"GET", "/runningpods/", "GET /runningpods/", "get", fine("pods")},
		{"GET", "/configz", "GET /configz", "get", fine("configz")},
		{"GET", "/metrics", "GET /metrics", "get", only("metrics")},
		{"GET", "/metrics/resource", "GET /metrics/resource", "get", only("metrics")},
		{"GET", "/stats/summary", "GET /stats/summary", "get", only("stats")},
		{"GET", "/containerLogs/ns/p/c", "GET /containerLogs/{namespace}/{pod}/{container}", "get", only("proxy")},
		{"POST", "/checkpoint/ns/p/c", "POST /checkpoint/{namespace}/{pod}/{container}", "create", only("checkpoint")},
		{"GET", "/checkpoint/ns/p/c", "/checkpoint/{namespace}/{pod}/{container}", "get", only("checkpoint")},
		{"GET", "/exec/ns/p/c", "GET /exec/{namespace}/{pod}/{container}", "get", only("proxy")},
		{"POST", "/exec/ns/p/c", "POST /exec/{namespace}/{pod}/{container}", "create", only("proxy")},
		{"GET", "/exec/ns/p/u/c", "GET /exec/{namespace}/{pod}/{uid}/{container}", "get", only("proxy")},
		{"POST", "/exec/ns/p/u/c", "POST /exec/{namespace}/{pod}/{uid}/{container}", "create", only("proxy")},
		{"GET", "/attach/ns/p/c", "GET /attach/{namespace}/{pod}/{container}", "get", only("proxy")},
		{"POST", "/attach/ns/p/c", "POST /attach/{namespace}/{pod}/{container}", "create", only("proxy")},
		{"GET", "/attach/ns/p/u/c", "GET /attach/{namespace}/{pod}/{uid}/{container}", "get", only("proxy")},
		{"POST", "/attach/ns/p/u/c", "POST /attach/{namespace}/{pod}/{uid}/{container}", "create", only("proxy")},
		{"GET", "/portForward/ns/p", "GET /portForward/{namespace}/{pod}", "get", only("proxy")},
		{"POST", "/portForward/ns/p", "POST /portForward/{namespace}/{pod}", "create", only("proxy")},
		{"GET", "/portForward/ns/p/u", "GET /portForward/{namespace}/{pod}/{uid}", "get", only("proxy")},
		{"POST", "/portForward/ns/p/u", "POST /portForward/{namespace}/{pod}/{uid}", "create", only("proxy")},
		// knode's own: metadata and taking or deleting an archive on
		// nodes/checkpoint; what hands out a memory dump or starts and
		// stops workloads on nodes/proxy, as exec.
		{"GET", "/devices", "GET /devices", "get", only("proxy")},
		{"GET", "/checkpoints", "GET /checkpoints", "get", only("checkpoint")},
		{"GET", "/checkpoints/a.tar", "GET /checkpoints/{archive}", "get", only("checkpoint")},
		{"DELETE", "/checkpoints/a.tar", "DELETE /checkpoints/{archive}", "delete", only("checkpoint")},
		{"GET", "/checkpoints/a.tar/content", "GET /checkpoints/{archive}/content", "get", only("proxy")},
		{"HEAD", "/checkpoints/a.tar/content", "GET /checkpoints/{archive}/content", "", only("proxy")},
		{"POST", "/restores", "POST /restores", "create", only("proxy")},
		{"DELETE", "/restores/r1", "DELETE /restores/{name}", "delete", only("proxy")},
		{"POST", "/pods/ns/p/stop", "POST /pods/{namespace}/{name}/stop", "create", only("proxy")},
		// No route (404 or 405): the kubelet's path rules.
		{"DELETE", "/pods", "", "delete", fine("pods")},
		{"PUT", "/configz", "", "update", fine("configz")},
		{"GET", "/statusz", "", "get", fine("statusz")},
		{"PATCH", "/pods/x", "", "patch", fine("pods")},
		{"GET", "/stats", "", "get", only("stats")},
		{"GET", "/metrics/cadvisor", "", "get", only("metrics")},
		{"GET", "/logs/syslog", "", "get", only("log")},
		{"POST", "/checkpoint", "", "create", only("checkpoint")},
		{"GET", "/checkpoints/a.tar/content/more", "", "get", only("proxy")},
		{"PUT", "/restores", "", "update", only("proxy")},
		{"GET", "/statsfoo", "", "get", only("proxy")},
		{"OPTIONS", "/pods", "", "", fine("pods")},
		{"GET", "/nothing", "", "get", only("proxy")},
	}
	s := fullServer()
	covered := map[string]bool{}
	u := &user.DefaultInfo{Name: "alice"}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		_, pattern := s.secure.Handler(r)
		if pattern != tt.route {
			t.Errorf("%s %s: routed to %q, want %q", tt.method, tt.path, pattern, tt.route)
			continue
		}
		covered[pattern] = true
		attrs := Attributes(u, tt.method, tt.path, pattern, "node1")
		var subs []string
		for _, a := range attrs {
			subs = append(subs, a.Subresource)
			if a.Verb != tt.verb || a.Resource != "nodes" || a.Name != "node1" || a.APIVersion != "v1" || a.APIGroup != "" ||
				!a.ResourceRequest || a.User.GetName() != "alice" || a.Path != tt.path || a.Namespace != "" {
				t.Errorf("%s %s: attributes %+v, want verb %q", tt.method, tt.path, a, tt.verb)
			}
		}
		if !slices.Equal(subs, tt.subresources) {
			t.Errorf("%s %s: subresources %v, want %v", tt.method, tt.path, subs, tt.subresources)
		}
	}
	for _, p := range s.patterns {
		if !covered[p] {
			t.Errorf("route %q is not tested here", p)
		}
		if _, ok := routeAuthz[p]; !ok {
			t.Errorf("route %q has no row in routeAuthz", p)
		}
	}
	for p := range routeAuthz {
		if !slices.Contains(s.patterns, p) {
			t.Errorf("routeAuthz row %q is no route", p)
		}
	}
}

// TestFineGrainedFallback checks the order of checks over HTTP: the
// fine-grained subresource first, then proxy; the first allowed one lets
// the request through; the 403 names every subresource tried.
func TestFineGrainedFallback(t *testing.T) {
	ca := newTestCA(t, "ca")
	alice := ca.client(t, "alice")
	grant := func(subs ...string) (Authorizer, *[]string) {
		var asked []string
		return authzFunc(func(a authorizer.Attributes) (authorizer.Decision, string, error) {
			asked = append(asked, a.GetVerb()+" "+a.GetSubresource())
			if slices.Contains(subs, a.GetSubresource()) {
				return authorizer.DecisionAllow, "", nil
			}
			return authorizer.DecisionDeny, "", nil
		}), &asked
	}
	tests := []struct {
		name    string
		granted []string
		method  string
		path    string
		code    int
		body    string
		asked   []string
	}{
		{"pods alone reads /pods", []string{"pods"}, "GET", "/pods", 200, `"kind":"PodList"`, []string{"get pods"}},
		{"proxy is the fallback for /pods", []string{"proxy"}, "GET", "/pods", 200, `"kind":"PodList"`, []string{"get pods", "get proxy"}},
		{"neither", []string{"checkpoint"}, "GET", "/pods", 403,
			"Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])", []string{"get pods", "get proxy"}},
		{"healthz alone", []string{"healthz"}, "GET", "/healthz", 200, "ok", []string{"get healthz"}},
		{"HEAD has the kubelet's empty verb", []string{"checkpoint"}, "HEAD", "/healthz", 403, "", []string{" healthz", " proxy"}},
		{"pods does not read logs", []string{"pods"}, "GET", "/containerLogs/default/web/app", 403,
			"Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[proxy])", []string{"get proxy"}},
		{"an unknown path is still checked", []string{"checkpoint"}, "GET", "/nothing", 403,
			"subresource(s)=[proxy]", []string{"get proxy"}},
		{"an unknown path with the permission is 404", []string{"proxy"}, "GET", "/nothing", 404, "", []string{"get proxy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			authz, asked := grant(tt.granted...)
			ts, _ := testServer(t, ca, authz, false)
			code, body := get(t, ts, tt.method, tt.path, &alice)
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tt.code, tt.body)
			}
			if !slices.Equal(*asked, tt.asked) {
				t.Fatalf("asked %q, want %q", *asked, tt.asked)
			}
		})
	}
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: name}, key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) client(t *testing.T, cn string, groups ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := signClientCert(ca.cert, ca.key, key.Public(), cn, groups)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

type fakePods struct{ pods []*v1.Pod }

func (f *fakePods) Pods() []*v1.Pod        { return f.pods }
func (f *fakePods) RunningPods() []*v1.Pod { return f.pods }
func (f *fakePods) PodsVersion() uint64    { return 1 }
func (f *fakePods) GetPod(ns, name string) (*v1.Pod, bool) {
	for _, p := range f.pods {
		if p.Namespace == ns && p.Name == name {
			return p, true
		}
	}
	return nil, false
}

type fakeLogs struct{ calls int }

func (f *fakeLogs) ReadLogs(_ context.Context, id string, _ *v1.PodLogOptions, stdout, _ io.Writer) error {
	f.calls++
	_, err := io.WriteString(stdout, "log of "+id+"\n")
	return err
}

type authzFunc func(authorizer.Attributes) (authorizer.Decision, string, error)

func (f authzFunc) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	return f(a)
}

// testServer serves the full chain over real TLS.
func testServer(t *testing.T, ca *testCA, authz Authorizer, anonymous bool) (*httptest.Server, *fakeLogs) {
	t.Helper()
	logs := &fakeLogs{}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:   v1.PodSpec{Containers: []v1.Container{{Name: "app"}}},
		Status: v1.PodStatus{Phase: v1.PodRunning, ContainerStatuses: []v1.ContainerStatus{{Name: "app", ContainerID: "containerd://abc"}}}}
	s := New(Config{
		NodeName:      "node1",
		Authenticator: NewAuthenticator(AuthConfig{ClientCAs: ca.pool, Anonymous: anonymous}),
		Authorizer:    authz,
		Pods:          &fakePods{pods: []*v1.Pod{pod}},
		Logs:          logs,
		Health:        []HealthCheck{{Name: "runtime", Check: func() error { return nil }}},
	})
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts, logs
}

func get(t *testing.T, ts *httptest.Server, method, path string, cert *tls.Certificate) (int, string) {
	t.Helper()
	tr := ts.Client().Transport.(*http.Transport).Clone()
	if cert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	}
	req, _ := http.NewRequest(method, ts.URL+path, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAuthenticationAndAuthorization(t *testing.T) {
	ca := newTestCA(t, "good-ca")
	other := newTestCA(t, "other-ca")
	good := ca.client(t, "alice", "team")
	foreign := other.client(t, "mallory")
	allow := authzFunc(func(authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionAllow, "", nil
	})
	deny := authzFunc(func(authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionDeny, "no", nil
	})
	broken := authzFunc(func(authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionNoOpinion, "", errors.New("webhook down")
	})
	var seen authorizer.Attributes
	recording := authzFunc(func(a authorizer.Attributes) (authorizer.Decision, string, error) {
		seen = a
		return authorizer.DecisionAllow, "", nil
	})

	tests := []struct {
		name      string
		authz     Authorizer
		anonymous bool
		cert      *tls.Certificate
		method    string
		path      string
		code      int
		body      string
	}{
		{"no certificate", allow, false, nil, "GET", "/pods", 401, "Unauthorized"},
		{"certificate from another CA", allow, false, &foreign, "GET", "/pods", 401, "Unauthorized"},
		{"good certificate", allow, false, &good, "GET", "/pods", 200, `"kind":"PodList"`},
		{"anonymous when enabled", allow, true, nil, "GET", "/healthz", 200, "ok"},
		{"foreign certificate rejected even with anonymous on", allow, true, &foreign, "GET", "/pods", 401, "Unauthorized"},
		{"denied", deny, false, &good, "GET", "/pods", 403, "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])"},
		{"denied metrics", deny, false, &good, "GET", "/metrics", 403, "subresource(s)=[metrics]"},
		{"anonymous denied", deny, true, nil, "POST", "/checkpoint/a/b/c", 403, "Forbidden (user=system:anonymous, verb=create, resource=nodes, subresource(s)=[checkpoint])"},
		{"authorizer error, its cause not told", broken, false, &good, "GET", "/pods", 500, "Authorization error (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, _ := testServer(t, ca, tt.authz, tt.anonymous)
			code, body := get(t, ts, tt.method, tt.path, tt.cert)
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tt.code, tt.body)
			}
		})
	}

	t.Run("the authorizer's error is logged, not answered", func(t *testing.T) {
		ts, _ := testServer(t, ca, broken, false)
		if code, body := get(t, ts, "GET", "/pods", &good); code != 500 || strings.Contains(body, "webhook down") {
			t.Fatalf("got %d %q: the cause reached the client", code, body)
		}
	})

	t.Run("user and groups from the certificate", func(t *testing.T) {
		ts, _ := testServer(t, ca, recording, false)
		if code, _ := get(t, ts, "GET", "/healthz", &good); code != 200 {
			t.Fatalf("code %d", code)
		}
		u := seen.GetUser()
		if u.GetName() != "alice" || !contains(u.GetGroups(), "team") || !contains(u.GetGroups(), "system:authenticated") {
			t.Fatalf("user %q groups %v", u.GetName(), u.GetGroups())
		}
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestBadInput(t *testing.T) {
	ca := newTestCA(t, "ca")
	good := ca.client(t, "alice")
	allow := authzFunc(func(authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionAllow, "", nil
	})
	ts, logs := testServer(t, ca, allow, false)
	tests := []struct {
		path string
		code int
	}{
		{"/containerLogs/default/web/app", 200},
		{"/containerLogs/default/web/app?tailLines=2&timestamps=true", 200},
		{"/containerLogs/default/missing/app", 404},
		{"/containerLogs/default/web/nope", 404},
		{"/containerLogs/a%2Fb/web/app", 400},
		{"/containerLogs/default/..%2F..%2Fetc/app", 400},
		{"/containerLogs/default/web/a%00b", 400},
		{"/containerLogs/default/" + strings.Repeat("a", 300) + "/app", 400},
		{"/containerLogs/default/web/app?tailLines=x", 422},
		{"/containerLogs/default/web/app?limitBytes=0", 422},
		{"/containerLogs/default/web/app?" + strings.Repeat("a=b&", 2000), 414},
		{"/containerLogs/default/web", 404},
		{"/nothing", 404},
	}
	for _, tt := range tests {
		if code, body := get(t, ts, "GET", tt.path, &good); code != tt.code {
			t.Errorf("%s: %d %q, want %d", tt.path[:min(len(tt.path), 80)], code, body, tt.code)
		}
	}
	if logs.calls != 2 {
		t.Fatalf("logs were read %d times; only the 2 valid requests may reach the log reader", logs.calls)
	}
	if code, _ := get(t, ts, "DELETE", "/pods", &good); code != 405 {
		t.Fatalf("wrong method: %d, want 405", code)
	}
}
