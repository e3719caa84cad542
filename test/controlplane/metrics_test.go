package controlplane

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRequestsByMethod(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="a",method="GET"} 3
rest_client_requests_total{code="201",host="a",method="POST"} 2
rest_client_requests_total{code="409",host="b",method="POST"} 1
# TYPE other_total counter
other_total{method="GET"} 100
`)
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	got, err := RequestsByMethod(srv.Client(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["GET"] != 3 || got["POST"] != 3 {
		t.Fatalf("got %v, want GET 3 and POST 3", got)
	}
}
