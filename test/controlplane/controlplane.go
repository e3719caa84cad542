package controlplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreclient "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// ControlPlane is a real etcd and kube-apiserver on loopback, with RBAC,
// the Node authorizer and NodeRestriction, as a cluster runs them.
type ControlPlane struct {
	// URL is the API server's address.
	URL string
	PKI *PKI

	bin, dir string
	apiArgs  []string
	etcd     *process
	api      *process
	admin    coreclient.CoreV1Interface
}

// process is a control-plane process that can be stopped and started again.
type process struct {
	cmd *exec.Cmd
	log *os.File
}

func start(logFile, name string, args ...string) (*process, error) {
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(name), err)
	}
	return &process{cmd: cmd, log: f}, nil
}

func (p *process) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.log.Close()
}

// FreePort asks the kernel for an unused loopback port.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts asks for n distinct unused loopback ports. The listeners stay
// open until all n are chosen: closed one by one, the kernel may hand the
// same port out twice (etcd's client and peer URLs once got one port and
// etcd failed with "address already in use").
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Start runs etcd and kube-apiserver from binDir with their data, logs and
// certificates in dir, and waits until the API server serves.
func Start(binDir, dir string) (cp *ControlPlane, err error) {
	pki, err := NewPKI(dir)
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	cp = &ControlPlane{URL: fmt.Sprintf("https://127.0.0.1:%d", ports[2]), PKI: pki, bin: binDir, dir: dir}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if cp.etcd, err = start(filepath.Join(dir, "etcd.log"), filepath.Join(binDir, "etcd"), "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "default="+peerURL); err != nil {
		return cp, err
	}
	if err := writeServiceAccountKeys(dir); err != nil {
		return cp, err
	}
	srvCrt, srvKey, err := pki.Issue("apiserver", "kube-apiserver", Loopback())
	if err != nil {
		return cp, err
	}
	kubeletCrt, kubeletKey, err := pki.Issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", nil, "system:masters")
	if err != nil {
		return cp, err
	}
	cp.apiArgs = []string{"--etcd-servers", etcdURL, "--secure-port", strconv.Itoa(ports[2]), "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--tls-cert-file", srvCrt, "--tls-private-key-file", srvKey, "--client-ca-file", pki.CAFile,
		"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"), "--service-cluster-ip-range", "10.0.0.0/24",
		"--endpoint-reconciler-type", "none", "--allow-privileged=true",
		"--kubelet-client-certificate", kubeletCrt, "--kubelet-client-key", kubeletKey,
		"--kubelet-certificate-authority", pki.CAFile, "--kubelet-preferred-address-types", "InternalIP"}
	admin, err := cp.Kubeconfig("admin", "admin", "system:masters")
	if err != nil {
		return cp, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", admin)
	if err != nil {
		return cp, err
	}
	if cp.admin, err = coreclient.NewForConfig(cfg); err != nil {
		return cp, err
	}
	if err := cp.StartAPIServer(); err != nil {
		return cp, err
	}
	return cp, cp.WaitReady(90 * time.Second)
}

func writeServiceAccountKeys(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	pder, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	return errors.Join(
		os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600),
		os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o600))
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer).
func (cp *ControlPlane) StartAPIServer() (err error) {
	cp.api, err = start(filepath.Join(cp.dir, "apiserver.log"), filepath.Join(cp.bin, "kube-apiserver"), cp.apiArgs...)
	return err
}

// StopAPIServer kills kube-apiserver, as an outage would.
func (cp *ControlPlane) StopAPIServer() {
	cp.api.stop()
	cp.api = nil
}

// WaitReady waits until the API server serves and has made the namespaces
// nodes need.
func (cp *ControlPlane) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cp.admin.Namespaces().Get(ctx, "kube-node-lease", metav1.GetOptions{})
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver did not come up: %w", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Stop kills both processes.
func (cp *ControlPlane) Stop() {
	cp.api.stop()
	cp.etcd.stop()
}

// Kubeconfig writes a kubeconfig for a client certificate of user in groups.
func (cp *ControlPlane) Kubeconfig(name, user string, groups ...string) (string, error) {
	crt, key, err := cp.PKI.Issue(name+"-client", user, nil, groups...)
	if err != nil {
		return "", err
	}
	path := filepath.Join(cp.dir, name+".kubeconfig")
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: %s
  user: {client-certificate: %q, client-key: %q}
contexts:
- name: test
  context: {cluster: test, user: %s}
current-context: test
`, cp.URL, cp.PKI.CAFile, name, crt, key, name)
	return path, os.WriteFile(path, []byte(content), 0o600)
}

// Logs returns the last lines of each process's log, for a failed test.
func (cp *ControlPlane) Logs(lines int) string {
	var b strings.Builder
	for _, name := range []string{"apiserver.log", "etcd.log"} {
		data, _ := os.ReadFile(filepath.Join(cp.dir, name))
		all := strings.Split(string(data), "\n")
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		fmt.Fprintf(&b, "%s:\n%s\n", name, strings.Join(all, "\n"))
	}
	return b.String()
}
