package server

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"knode.io/knode/internal/metrics"
)

// Anyone who reaches the port can choose the HTTP method, authenticated or
// not: a method is any token. The metrics' method label must take a fixed
// set of values, or each made-up method adds series (a counter, a gauge and
// a histogram) that are never freed, and a peer grows knode's memory
// without bound.
func TestMetricsMethodLabelIsBounded(t *testing.T) {
	m := metrics.New()
	// No credentials at all: every request is refused with 401, and counted.
	s := New(Config{NodeName: "node1", Pods: &fakePods{}, Logs: &fakeLogs{}, Metrics: m,
		Authenticator: NewAuthenticator(AuthConfig{}), Authorizer: alwaysAllow{}})
	h := s.Handler()
	for i := range 200 {
		req := httptest.NewRequest("M"+strconv.Itoa(i), "/healthz", nil)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodHead} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/healthz", nil))
	}
	ch := make(chan prometheus.Metric, 1024)
	m.HTTPRequests.Collect(ch)
	close(ch)
	if n := len(ch); n > 12 {
		t.Fatalf("%d series of http_requests_total after 200 made-up methods", n)
	}
}
