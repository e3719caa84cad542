package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/utils/exec"
)

// restConfig reaches knode's API with its local admin certificate.
func (n *node) restConfig() *rest.Config {
	pki := filepath.Join(n.rootDir(), "pki")
	return &rest.Config{Host: n.url(), TLSClientConfig: rest.TLSClientConfig{
		CertFile: filepath.Join(pki, "admin.crt"), KeyFile: filepath.Join(pki, "admin.key"), CAFile: filepath.Join(pki, "kubelet.crt")}}
}

// execIn runs cmd in a container through an exec endpoint, as kubectl does.
func execIn(ctx context.Context, cfg *rest.Config, u *url.URL, stdin string) (stdout, stderr string, err error) {
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		return "", "", err
	}
	var out, errOut bytes.Buffer
	opts := remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}
	if stdin != "" {
		opts.Stdin = strings.NewReader(stdin)
	}
	err = ex.StreamWithContext(ctx, opts)
	return out.String(), errOut.String(), err
}

func TestExecAndPortForward(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("web.yaml", podManifest("web", "default", "Always",
		`mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 8080 -h /www`))
	n.startKnode()
	n.waitRunning("default", "web", "main")
	n.eventually(30*time.Second, "the pod's status", func() bool {
		_, _, body := n.raw("GET", "/pods")
		return strings.Contains(body, `"running"`)
	})
	cfg := n.restConfig()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// kubectl exec -i: stdin in, stdout and stderr out.
	q := url.Values{"command": {"sh", "-c", "read x; echo got $x; echo to stderr >&2"}, "input": {"1"}, "output": {"1"}, "error": {"1"}}
	u, _ := url.Parse(n.url() + "/exec/default/" + n.podName("web") + "/main?" + q.Encode())
	stdout, stderr, err := execIn(ctx, cfg, u, "hello\n")
	if err != nil || stdout != "got hello\n" || stderr != "to stderr\n" {
		t.Fatalf("exec: stdout %q stderr %q err %v", stdout, stderr, err)
	}
	// A command's exit code comes back as kubectl shows it.
	q = url.Values{"command": {"sh", "-c", "exit 3"}, "output": {"1"}, "error": {"1"}}
	u, _ = url.Parse(n.url() + "/exec/default/" + n.podName("web") + "/main?" + q.Encode())
	_, _, err = execIn(ctx, cfg, u, "")
	var exit utilexec.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 3 {
		t.Fatalf("exec exit 3: %v", err)
	}
	// A container that does not exist: 404 before any upgrade.
	q = url.Values{"command": {"true"}, "output": {"1"}}
	u, _ = url.Parse(n.url() + "/exec/default/" + n.podName("web") + "/nope?" + q.Encode())
	if _, _, err := execIn(ctx, cfg, u, ""); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("exec in a missing container: %v", err)
	}

	// kubectl port-forward: a local port reaches the pod's port 8080.
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pf, _ := url.Parse(n.url() + "/portForward/default/" + n.podName("web"))
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", pf)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	defer func() {
		close(stop)
		<-done
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port forward: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("port forward not ready")
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("forwarded ports: %v %v", ports, err)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", ports[0].Local))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from the pod\n" {
		t.Fatalf("through the forwarded port: %d %q", resp.StatusCode, body)
	}
}
