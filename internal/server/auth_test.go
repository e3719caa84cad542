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
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	certutil "k8s.io/client-go/util/cert"
)

func TestAttributes(t *testing.T) {
	tests := []struct {
		method, path, verb, subresource string
	}{
		{"GET", "/stats/summary", "get", "stats"},
		{"GET", "/stats", "get", "stats"},
		{"GET", "/metrics", "get", "metrics"},
		{"GET", "/metrics/cadvisor", "get", "metrics"},
		{"GET", "/logs/syslog", "get", "log"},
		{"POST", "/checkpoint/default/p/c", "create", "checkpoint"},
		{"GET", "/checkpoints", "get", "checkpoint"},
		{"DELETE", "/checkpoints/a.tar", "delete", "checkpoint"},
		{"POST", "/restores", "create", "checkpoint"},
		{"GET", "/pods", "get", "proxy"},
		{"GET", "/healthz", "get", "proxy"},
		{"GET", "/containerLogs/ns/p/c", "get", "proxy"},
		{"GET", "/statsfoo", "get", "proxy"},
		{"PUT", "/configz", "update", "proxy"},
		{"PATCH", "/pods", "patch", "proxy"},
		{"HEAD", "/healthz", "get", "proxy"},
	}
	u := &user.DefaultInfo{Name: "alice"}
	for _, tt := range tests {
		a := Attributes(u, tt.method, tt.path, "node1")
		if a.Verb != tt.verb || a.Subresource != tt.subresource || a.Resource != "nodes" || a.Name != "node1" ||
			a.APIVersion != "v1" || a.APIGroup != "" || !a.ResourceRequest || a.User.GetName() != "alice" {
			t.Errorf("%s %s: got verb=%s subresource=%s %+v", tt.method, tt.path, a.Verb, a.Subresource, a)
		}
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
		{"denied", deny, false, &good, "GET", "/pods", 403, "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[proxy])"},
		{"denied metrics", deny, false, &good, "GET", "/metrics", 403, "subresource(s)=[metrics]"},
		{"anonymous denied", deny, true, nil, "POST", "/checkpoint/a/b/c", 403, "Forbidden (user=system:anonymous, verb=create, resource=nodes, subresource(s)=[checkpoint])"},
		{"authorizer error", broken, false, &good, "GET", "/pods", 500, "webhook down"},
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
