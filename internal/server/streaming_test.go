package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"knode.io/knode/internal/pods"
)

// fakeStreaming answers with the URL of an upstream, or with err.
type fakeStreaming struct {
	upstream *url.URL
	err      error
	got      string
}

func (f *fakeStreaming) ExecURL(_ context.Context, ns, pod, c string, cmd []string, o pods.StreamOptions) (*url.URL, error) {
	f.got = fmt.Sprintf("exec %s/%s/%s %q %+v", ns, pod, c, cmd, o)
	return f.upstream, f.err
}

func (f *fakeStreaming) AttachURL(_ context.Context, ns, pod, c string, o pods.StreamOptions) (*url.URL, error) {
	f.got = fmt.Sprintf("attach %s/%s/%s %+v", ns, pod, c, o)
	return f.upstream, f.err
}

func (f *fakeStreaming) PortForwardURL(_ context.Context, ns, pod string, ports []int32) (*url.URL, error) {
	f.got = fmt.Sprintf("portforward %s/%s %v", ns, pod, ports)
	return f.upstream, f.err
}

// echoUpstream upgrades any request and echoes what it receives, as a
// runtime's streaming server would carry a session.
func echoUpstream(t *testing.T) *url.URL {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "SPDY/3.1") {
			http.Error(w, "upgrade required", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
		rw.Flush()
		io.Copy(conn, rw)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/exec/token")
	return u
}

func TestStreaming(t *testing.T) {
	upstream := echoUpstream(t)
	tests := []struct {
		name string
		path string
		err  error
		code int
		got  string
		echo bool
	}{
		{"exec is proxied to the runtime", "/exec/default/web/app?command=sh&command=-c&command=true&input=1&output=1&tty=1", nil, 101,
			`exec default/web/app ["sh" "-c" "true"] {Stdin:true Stdout:true Stderr:false TTY:true}`, true},
		{"exec with the pod's UID in the path", "/exec/default/web/uid-1/app?command=ls&output=1&error=1", nil, 101,
			`exec default/web/app ["ls"] {Stdin:false Stdout:true Stderr:true TTY:false}`, true},
		{"attach with the pod's UID", "/attach/default/web/uid-1/app?output=1", nil, 101, "attach default/web/app {Stdin:false Stdout:true Stderr:false TTY:false}", true},
		{"port forward with the pod's UID", "/portForward/default/web/uid-1?port=8080", nil, 101, "portforward default/web [8080]", true},
		// Another UID is another instance of the pod: 404, the runtime never asked.
		{"exec with another UID", "/exec/default/web/uid-2/app?command=ls&output=1", nil, 404, "-", false},
		{"attach with another UID", "/attach/default/web/uid-2/app?output=1", nil, 404, "-", false},
		{"port forward with another UID", "/portForward/default/web/uid-2?port=8080", nil, 404, "-", false},
		{"UID of a pod that does not exist", "/exec/default/gone/uid-1/app?command=ls&output=1", nil, 404, "-", false},
		{"attach", "/attach/default/web/app?output=1", nil, 101, "attach default/web/app {Stdin:false Stdout:true Stderr:false TTY:false}", true},
		{"port forward", "/portForward/default/web?port=8080", nil, 101, "portforward default/web [8080]", true},
		{"no command", "/exec/default/web/app?output=1", nil, 400, "", false},
		{"no stream", "/exec/default/web/app?command=ls", nil, 400, "", false},
		{"tty and stderr", "/exec/default/web/app?command=ls&output=1&error=1&tty=1", nil, 400, "", false},
		{"bad port", "/portForward/default/web?port=99999", nil, 400, "", false},
		{"bad pod name", "/exec/default/We..b/app?command=ls&output=1", nil, 400, "", false},
		{"pod unknown", "/exec/default/web/app?command=ls&output=1", fmt.Errorf("pod: %w", pods.ErrNotFound), 404, "", false},
		{"container not running", "/exec/default/web/app?command=ls&output=1", fmt.Errorf("app: %w", pods.ErrNotRunning), 400, "", false},
		{"runtime error", "/exec/default/web/app?command=ls&output=1", errors.New("runtime broke"), 500, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeStreaming{upstream: upstream, err: tt.err}
			web := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1"}}
			s := New(Config{NodeName: "n1", Pods: &fakePods{pods: []*v1.Pod{web}}, Streaming: fake})
			ts := httptest.NewServer(s.secure)
			defer ts.Close()
			conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n\r\n", tt.path)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.code {
				body, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tt.code)
			}
			if tt.got == "-" && fake.got != "" {
				t.Fatalf("the runtime was asked: %s", fake.got)
			}
			if tt.got != "" && tt.got != "-" && fake.got != tt.got {
				t.Fatalf("asked the runtime for %s, want %s", fake.got, tt.got)
			}
			if tt.echo {
				fmt.Fprint(conn, "ping\n")
				line, err := br.ReadString('\n')
				if err != nil || line != "ping\n" {
					t.Fatalf("the session is not carried through: %q %v", line, err)
				}
			}
		})
	}
}
