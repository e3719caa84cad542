package prober

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilexec "k8s.io/utils/exec"
)

type fakeExec struct {
	code  int // 0: success
	hang  bool
	calls []string
}

func (f *fakeExec) ExecSync(ctx context.Context, id string, cmd []string, _ time.Duration) ([]byte, []byte, error) {
	f.calls = append(f.calls, id+": "+strings.Join(cmd, " "))
	if f.hang {
		<-ctx.Done()
		return nil, nil, ctx.Err()
	}
	if f.code != 0 {
		return []byte("out"), []byte("err"), utilexec.CodeExitError{Err: context.Canceled, Code: f.code}
	}
	return nil, nil, nil
}

func listen(t *testing.T) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return "127.0.0.1", ln.Addr().(*net.TCPAddr).Port
}

func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestProbe(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.UserAgent(), "kube-probe/") || r.Header.Get("X-Custom") != "yes" || r.Host != "example.test" {
			http.Error(w, "wrong request: "+r.UserAgent()+" "+r.Host, http.StatusBadRequest)
			return
		}
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "broken", http.StatusServiceUnavailable) })
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
	})
	mux.HandleFunc("/here", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/fail", http.StatusFound) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	httpPort, _ := strconv.Atoi(portStr)
	_, tcpPort := listen(t)

	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(grpcLn)
	defer gs.Stop()
	grpcPort := int32(grpcLn.Addr().(*net.TCPAddr).Port)

	target := Target{ContainerID: "c1", PodIP: "127.0.0.1", Ports: []v1.ContainerPort{{Name: "web", ContainerPort: int32(httpPort)}}}
	get := func(path string, port intstr.IntOrString) v1.ProbeHandler {
		return v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: path, Port: port,
			HTTPHeaders: []v1.HTTPHeader{{Name: "X-Custom", Value: "yes"}, {Name: "Host", Value: "example.test"}}}}
	}
	str := func(s string) *string { return &s }
	tests := []struct {
		name    string
		handler v1.ProbeHandler
		exec    *fakeExec
		pass    bool
		output  string
	}{
		{"exec exits 0", v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}, &fakeExec{}, true, ""},
		{"exec exits 1", v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"false"}}}, &fakeExec{code: 1}, false, "exited with 1: outerr"},
		{"exec times out", v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"sleep"}}}, &fakeExec{hang: true}, false, "timed out"},
		{"http 200, headers and Host sent", get("/ok", intstr.FromInt32(int32(httpPort))), nil, true, ""},
		{"http by named port", get("/ok", intstr.FromString("web")), nil, true, ""},
		{"http 503", get("/fail", intstr.FromInt32(int32(httpPort))), nil, false, "statuscode: 503"},
		{"http redirect on the same host is followed", get("/here", intstr.FromInt32(int32(httpPort))), nil, false, "statuscode: 503"},
		{"http redirect to another host passes", get("/away", intstr.FromInt32(int32(httpPort))), nil, true, ""},
		{"http unknown named port", get("/ok", intstr.FromString("nope")), nil, false, "not one of the container's named ports"},
		{"http refused", get("/ok", intstr.FromInt32(int32(closedPort(t)))), nil, false, "connection refused"},
		{"tcp open", v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(int32(tcpPort))}}, nil, true, ""},
		{"tcp closed", v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(int32(closedPort(t)))}}, nil, false, "connection refused"},
		{"grpc serving", v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: grpcPort, Service: str("up")}}, nil, true, ""},
		{"grpc not serving", v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: grpcPort, Service: str("down")}}, nil, false, "NOT_SERVING"},
		{"no handler", v1.ProbeHandler{}, nil, false, "no handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exec := tt.exec
			if exec == nil {
				exec = &fakeExec{}
			}
			r := New(exec).Probe(context.Background(), &v1.Probe{ProbeHandler: tt.handler, TimeoutSeconds: 1}, target)
			if r.Success != tt.pass || !strings.Contains(r.Output, tt.output) {
				t.Fatalf("got %+v, want success=%v with output containing %q", r, tt.pass, tt.output)
			}
			if tt.handler.Exec != nil && (len(exec.calls) != 1 || !strings.HasPrefix(exec.calls[0], "c1: ")) {
				t.Fatalf("exec calls: %v", exec.calls)
			}
		})
	}
}
