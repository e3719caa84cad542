package server

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"

	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// As the kubelet (its flushwriter), every log answer is streamed in chunks,
// follow or not: with a Content-Length the API server's websocket log
// stream lost the bytes that came with the end of the body (the e2e spec
// "Pods should support retrieving logs from the container over websockets").
func TestContainerLogsAreChunked(t *testing.T) {
	ca := newTestCA(t, "ca")
	cert := ca.client(t, "alice")
	allow := authzFunc(func(authorizer.Attributes) (authorizer.Decision, string, error) {
		return authorizer.DecisionAllow, "", nil
	})
	ts, _ := testServer(t, ca, allow, false)
	tr := ts.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	resp, err := (&http.Client{Transport: tr}).Get(ts.URL + "/containerLogs/default/web/app")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "log of abc\n" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("a small log answer was sent with Content-Length %d (transfer encoding %v), want chunked", resp.ContentLength, resp.TransferEncoding)
	}
}
