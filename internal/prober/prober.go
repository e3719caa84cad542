// Package prober runs one container probe — exec, HTTP GET, TCP socket or
// gRPC health check — the way the kubelet does, and says whether it passed.
// When and how often to probe, and what a result means, is the pod
// workers' business.
package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilexec "k8s.io/utils/exec"
)

// Execer runs a command in a container (CRI ExecSync).
type Execer interface {
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, err error)
}

// Target is what a probe is aimed at.
type Target struct {
	ContainerID string
	// PodIP is the default host of HTTP, TCP and gRPC probes.
	PodIP string
	// Ports resolve a probe's named port.
	Ports []v1.ContainerPort
}

// Result is one probe's outcome; Output says why it failed.
type Result struct {
	Success bool
	Output  string
}

// UserAgent is sent by HTTP probes; applications that recognise the
// kubelet's probes look for the "kube-probe/" prefix.
const UserAgent = "kube-probe/knode"

// maxOutput bounds what is kept of a failed probe's output or body.
const maxOutput = 10 << 10

// Prober runs probes.
type Prober struct {
	exec Execer
	http *http.Client
}

// New returns a Prober that runs exec probes through exec.
func New(exec Execer) *Prober {
	return &Prober{exec: exec, http: &http.Client{
		Transport: &http.Transport{
			// As the kubelet: probes do not verify certificates and do not
			// keep connections, so each probe sees the container as a new
			// client would.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the kubelet's probe semantics
			DisableKeepAlives: true,
			Proxy:             nil,
		},
		CheckRedirect: sameHostRedirects,
	}}
}

// errOtherHost stops a redirect to another host: the kubelet counts the
// probe as passed rather than probe a host the pod does not own.
var errOtherHost = errors.New("redirect to another host")

func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return errOtherHost
	}
	return nil
}

// Probe runs p once against t, within p's timeout.
func (pr *Prober) Probe(ctx context.Context, p *v1.Probe, t Target) Result {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.Exec != nil:
		return pr.probeExec(ctx, p.Exec, t, timeout)
	case p.HTTPGet != nil:
		return pr.probeHTTP(ctx, p.HTTPGet, t)
	case p.TCPSocket != nil:
		return probeTCP(ctx, p.TCPSocket, t)
	case p.GRPC != nil:
		return probeGRPC(ctx, p.GRPC, t)
	default:
		return Result{Output: "the probe has no handler (exec, httpGet, tcpSocket or grpc)"}
	}
}

func (pr *Prober) probeExec(ctx context.Context, e *v1.ExecAction, t Target, timeout time.Duration) Result {
	stdout, stderr, err := pr.exec.ExecSync(ctx, t.ContainerID, e.Command, timeout)
	if err == nil {
		return Result{Success: true}
	}
	out := truncate(string(stdout) + string(stderr))
	var exit utilexec.ExitError
	if errors.As(err, &exit) {
		return Result{Output: fmt.Sprintf("command %q exited with %d: %s", strings.Join(e.Command, " "), exit.ExitStatus(), out)}
	}
	if ctx.Err() != nil {
		return Result{Output: fmt.Sprintf("command %q timed out after %s", strings.Join(e.Command, " "), timeout)}
	}
	return Result{Output: fmt.Sprintf("command %q: %v", strings.Join(e.Command, " "), err)}
}

func (pr *Prober) probeHTTP(ctx context.Context, g *v1.HTTPGetAction, t Target) Result {
	hostPort, err := t.address(g.Host, g.Port)
	if err != nil {
		return Result{Output: err.Error()}
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: hostPort}
	if parsed, err := url.Parse(path); err == nil {
		u.Path, u.RawQuery = parsed.Path, parsed.RawQuery
	} else {
		u.Path = path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Result{Output: fmt.Sprintf("HTTP probe %s: %v", u, err)}
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := pr.http.Do(req)
	if errors.Is(err, errOtherHost) {
		return Result{Success: true}
	}
	if err != nil {
		return Result{Output: fmt.Sprintf("Get %q: %v", u.String(), unwrapURLError(err))}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxOutput))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return Result{Success: true}
	}
	return Result{Output: fmt.Sprintf("HTTP probe failed with statuscode: %d %s", resp.StatusCode, truncate(string(body)))}
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func probeTCP(ctx context.Context, s *v1.TCPSocketAction, t Target) Result {
	addr, err := t.address(s.Host, s.Port)
	if err != nil {
		return Result{Output: err.Error()}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Result{Output: fmt.Sprintf("dial tcp %s: %v", addr, err)}
	}
	conn.Close()
	return Result{Success: true}
}

func probeGRPC(ctx context.Context, g *v1.GRPCAction, t Target) Result {
	addr := net.JoinHostPort(t.PodIP, strconv.Itoa(int(g.Port)))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent(UserAgent))
	if err != nil {
		return Result{Output: fmt.Sprintf("gRPC probe %s: %v", addr, err)}
	}
	defer conn.Close()
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return Result{Output: fmt.Sprintf("gRPC health check %s: %v", addr, err)}
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return Result{Output: fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus())}
	}
	return Result{Success: true}
}

// address is host:port for a probe: the pod's IP unless the probe names a
// host, the port by number or by the container port's name.
func (t Target) address(host string, port intstr.IntOrString) (string, error) {
	n, err := resolvePort(port, t.Ports)
	if err != nil {
		return "", err
	}
	if host == "" {
		host = t.PodIP
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// resolvePort turns a probe's port (a number or a container port's name)
// into a number.
func resolvePort(p intstr.IntOrString, ports []v1.ContainerPort) (int, error) {
	if p.Type == intstr.Int {
		if p.IntVal < 1 || p.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port number %d", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	for _, cp := range ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil && n > 0 && n <= 65535 {
		return n, nil
	}
	return 0, fmt.Errorf("port %q is not one of the container's named ports", p.StrVal)
}

func truncate(s string) string {
	if len(s) > maxOutput {
		return s[:maxOutput] + "..."
	}
	return s
}
