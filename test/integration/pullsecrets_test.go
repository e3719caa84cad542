package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"knode.io/knode/test/controlplane"
)

// Credentials of the test registry. The htpasswd line is this password's
// bcrypt hash (the registry accepts bcrypt only).
const (
	registryUser     = "knode"
	registryPassword = "knode-pull-s3cret"
	registryHtpasswd = "knode:$2a$04$TRtZiuqUP6H1cXbINuKxcOP/fVpyWNxAjYc8.wI3eaB8ITNS98R7u\n"
)

// privateRegistry is the CNCF distribution registry serving TLS with a test
// CA and htpasswd basic auth on loopback.
type privateRegistry struct {
	host   string // 127.0.0.1:port
	caFile string
	pool   *x509.CertPool
}

func startPrivateRegistry(t *testing.T) *privateRegistry {
	t.Helper()
	bin := tool(t, "hack/setup-registry.sh", "registry", "registry")
	dir := t.TempDir()
	pki, err := controlplane.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := pki.Issue("registry", "registry", []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(registryHtpasswd), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &privateRegistry{host: "127.0.0.1:" + strconv.Itoa(freePort(t)), caFile: pki.CAFile}
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
  tls:
    certificate: %s
    key: %s
auth:
  htpasswd:
    realm: knode-test
    path: %s
`, filepath.Join(dir, "storage"), r.host, crt, key, htpasswd)
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgFile)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logFile.Name())
			t.Logf("registry log:\n%s", tail(string(data), 30))
		}
	})
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	r.pool = x509.NewCertPool()
	r.pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: r.transport()}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := client.Get("https://" + r.host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry did not answer /v2/ with 401: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (r *privateRegistry) transport() *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.pool, MinVersion: tls.VersionTLS12}}
}

// push uploads the busybox test image as repo:1 through the registry's
// HTTP API (blob uploads, then the manifest) and returns its reference.
func (r *privateRegistry) push(t *testing.T, repo string) string {
	t.Helper()
	img, err := tarball.ImageFromPath(filepath.Join(imageDir, "busybox.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: time.Minute, Transport: r.transport()}
	do := func(method, url, contentType string, body []byte, want int) *http.Response {
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(registryUser, registryPassword)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != want {
			msg, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s %s: %s: %s", method, url, resp.Status, msg)
		}
		return resp
	}
	base := "https://" + r.host + "/v2/" + repo
	upload := func(digest string, data []byte) {
		loc := do(http.MethodPost, base+"/blobs/uploads/", "", nil, http.StatusAccepted).Header.Get("Location")
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		if !u.IsAbs() {
			u = (&url.URL{Scheme: "https", Host: r.host}).ResolveReference(u)
		}
		q := u.Query()
		q.Set("digest", digest)
		u.RawQuery = q.Encode()
		do(http.MethodPut, u.String(), "application/octet-stream", data, http.StatusCreated)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		digest, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		upload(digest.String(), data)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	upload(cfgName.String(), cfg)
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	do(http.MethodPut, base+"/manifests/1", string(mt), manifest, http.StatusCreated)
	return r.host + "/" + repo + ":1"
}

// trust makes the node's containerd trust the registry's CA through its
// registry hosts directory (config_path).
func (r *privateRegistry) trust(t *testing.T, n *node) {
	t.Helper()
	dir := filepath.Join(n.layout().RegistryHostsDir(), r.host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n",
		"https://"+r.host, "https://"+r.host, r.caFile)
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dockerConfigJSON is a config.json document with one credential for key.
func dockerConfigJSON(key, user, password string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	data, _ := json.Marshal(map[string]any{"auths": map[string]any{key: map[string]string{"auth": auth}}})
	return data
}

// TestPullFromPrivateRegistry: against a real registry with TLS and basic
// auth, a pod whose image pull secrets hold the credentials pulls its
// image (a wrong secret listed first is tried and passed over), a pod
// whose service account carries the secret pulls through the API server's
// ServiceAccount admission, the node's own <root-dir>/config.json serves
// the repository its key names (a path key), and a pod without
// credentials fails with ErrImagePull and then ImagePullBackOff with the
// kubelet's messages and events. An image pulled with a secret serves
// only pods holding that credential.
func TestPullFromPrivateRegistry(t *testing.T) {
	t.Parallel()
	reg := startPrivateRegistry(t)
	withSecret := reg.push(t, "private/with-secret")
	viaSA := reg.push(t, "private/via-sa")
	nodeCreds := reg.push(t, "private/node")
	noCreds := reg.push(t, "private/none")

	cp := newControlPlane(t)
	n := newNode(t)
	reg.trust(t, n)
	if err := os.MkdirAll(n.rootDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	// The node's credentials name one repository: they must not serve the others.
	if err := os.WriteFile(filepath.Join(n.rootDir(), "config.json"),
		dockerConfigJSON(reg.host+"/private/node", registryUser, registryPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := cp.nodeKubeconfig(t, n)
	n.startKnode("--kubeconfig", kc)
	ctx := context.Background()
	for _, s := range []*v1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "wrongcred"}, Type: v1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{v1.DockerConfigJsonKey: dockerConfigJSON(reg.host, registryUser, "not-the-password")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: v1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{v1.DockerConfigJsonKey: dockerConfigJSON("https://"+reg.host+"/v2/", registryUser, registryPassword)}},
	} {
		if _, err := cp.core.Secrets("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sa := range []*v1.ServiceAccount{
		{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "puller"}, ImagePullSecrets: []v1.LocalObjectReference{{Name: "regcred"}}},
	} {
		if _, err := cp.core.ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	grace := int64(1)
	newPod := func(podName, image, sa string, secrets ...string) {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: "default"},
			Spec: v1.PodSpec{NodeName: n.name, TerminationGracePeriodSeconds: &grace, AutomountServiceAccountToken: new(bool),
				ServiceAccountName: sa,
				Containers:         []v1.Container{{Name: "main", Image: image, Command: []string{"sleep", "3600"}}}}}
		for _, s := range secrets {
			p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, v1.LocalObjectReference{Name: s})
		}
		if _, err := cp.core.Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	newPod("with-secret", withSecret, "", "wrongcred", "regcred")
	newPod("via-sa", viaSA, "puller")
	newPod("node-creds", nodeCreds, "")
	newPod("no-creds", noCreds, "")

	waiting := func(podName string) *v1.ContainerStateWaiting {
		p, err := cp.core.Pods("default").Get(ctx, podName, metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return nil
		}
		return p.Status.ContainerStatuses[0].State.Waiting
	}
	for _, podName := range []string{"with-secret", "via-sa", "node-creds"} {
		n.eventually(3*time.Minute, podName+" running from the private registry", func() bool {
			p, err := cp.core.Pods("default").Get(ctx, podName, metav1.GetOptions{})
			return err == nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
		})
	}
	if p, _ := cp.core.Pods("default").Get(ctx, "via-sa", metav1.GetOptions{}); len(p.Spec.ImagePullSecrets) != 1 {
		t.Errorf("the ServiceAccount admission did not give via-sa the service account's pull secret: %v", p.Spec.ImagePullSecrets)
	}

	// The image with-secret pulled is on the node now. As with the
	// kubelet (KEP-2535, on by default since v1.35), a pod without that
	// credential cannot use it (it must pull, and fails); a pod holding the
	// same credential under another secret can, without a pull.
	if _, err := cp.core.Secrets("default").Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "samecred"}, Type: v1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{v1.DockerConfigJsonKey: dockerConfigJSON("https://"+reg.host+"/v2/", registryUser, registryPassword)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	newPod("reuse-no-creds", withSecret, "")
	newPod("reuse-same-cred", withSecret, "", "samecred")
	n.eventually(3*time.Minute, "reuse-same-cred running", func() bool {
		p, err := cp.core.Pods("default").Get(ctx, "reuse-same-cred", metav1.GetOptions{})
		return err == nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	})
	n.eventually(3*time.Minute, "reuse-no-creds refused the private image", func() bool {
		wt := waiting("reuse-no-creds")
		return wt != nil && (wt.Reason == "ErrImagePull" || wt.Reason == "ImagePullBackOff") && strings.Contains(wt.Message, "authorization failed")
	})
	var reuseEvents []v1.Event
	n.eventually(time.Minute, "reuse-same-cred's 'can be accessed by the pod' event", func() bool {
		list, err := cp.core.Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=reuse-same-cred"})
		if err != nil {
			return false
		}
		reuseEvents = list.Items
		for _, e := range list.Items {
			if e.Reason == "Pulled" && e.Message == fmt.Sprintf("Container image %q already present on machine and can be accessed by the pod", withSecret) {
				return true
			}
		}
		return false
	})
	for _, e := range reuseEvents {
		if e.Reason == "Pulling" {
			t.Errorf("reuse-same-cred pulled again: %s", e.Message)
		}
	}

	var wt *v1.ContainerStateWaiting
	n.eventually(3*time.Minute, "no-creds in ImagePullBackOff", func() bool {
		wt = waiting("no-creds")
		return wt != nil && wt.Reason == "ImagePullBackOff"
	})
	prefix := fmt.Sprintf("Back-off pulling image %q: ErrImagePull: ", noCreds)
	if !strings.HasPrefix(wt.Message, prefix) || !strings.Contains(wt.Message, "authorization failed") {
		t.Errorf("ImagePullBackOff message %q, want %q and the runtime's authorization failure", wt.Message, prefix+"...")
	}
	// The events say it as the kubelet's do.
	want := map[string]string{
		"Failed to pull image " + strconv.Quote(noCreds) + ": ": "Failed",
		"Error: ErrImagePull":                              "Failed",
		"Back-off pulling image " + strconv.Quote(noCreds): "BackOff",
		"Error: ImagePullBackOff":                          "Failed",
		"Pulling image " + strconv.Quote(noCreds):          "Pulling",
	}
	n.eventually(time.Minute, "the kubelet's pull events for no-creds", func() bool {
		list, err := cp.core.Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=no-creds"})
		if err != nil {
			return false
		}
		found := 0
		for msg, reason := range want {
			for _, e := range list.Items {
				if e.Reason == reason && strings.HasPrefix(e.Message, msg) {
					found++
					break
				}
			}
		}
		return found == len(want)
	})
	// The pod with two secrets pulled after the registry refused the first.
	if log := n.knodeLog(); !strings.Contains(log, "/v2/private/with-secret/manifests/1: 401 Unauthorized") {
		t.Errorf("with-secret's wrong secret was not tried first (no refused pull of %s in the log)", withSecret)
	}
}
