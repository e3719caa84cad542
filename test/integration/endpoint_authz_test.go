package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"knode.io/knode/test/controlplane"
)

// TestEndpointAuthorization hits every knode-only endpoint, and the
// kubelet's fine-grained ones, with identities whose rights the real
// kube-apiserver's RBAC decides through SubjectAccessReview:
//
//   - checkpointer holds only nodes/checkpoint (get, list, create, delete):
//     it takes a real checkpoint, lists and inspects archives, and gets 403
//     for an archive's content (a memory dump), restores, stops, exec and
//     /pods;
//   - proxier holds nodes/proxy (get, create, delete): it gets through all
//     of them;
//   - podreader holds only nodes/pods get: /pods, nothing else.
func TestEndpointAuthorization(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	n := newNodeWithCRIU(t, criu41(t))
	n.writeManifest("sleeper.yaml", `apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  containers:
  - name: main
    image: `+busybox+`
    command: ["sh", "-c", "exec sleep 3600"]
`)
	kc := cp.nodeKubeconfig(t, n)
	srvCrt, srvKey := issue(t, cp.PKI, n.name+"-serving", n.name, controlplane.Loopback())
	n.startKnode("--kubeconfig", kc, "--authentication-token-webhook", "--authorization-mode", "Webhook",
		"--client-ca-file", cp.PKI.CAFile, "--tls-cert-file", srvCrt, "--tls-private-key-file", srvKey)
	ctx := context.Background()
	n.eventually(60*time.Second, "the node registered", func() bool {
		_, err := cp.core.Nodes().Get(ctx, n.name, metav1.GetOptions{})
		return err == nil
	})
	n.eventually(30*time.Second, "knode's API listening", n.listening)

	grant := func(name string, rules ...rbacv1.PolicyRule) string {
		if _, err := cp.rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules},
			metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cp.rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: "default"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cp.core.ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}},
			metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := cp.core.ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	rule := func(resource string, verbs ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{resource}, Verbs: verbs}
	}
	checkpointer := grant("checkpointer", rule("nodes/checkpoint", "get", "list", "create", "delete"))
	proxier := grant("proxier", rule("nodes/proxy", "get", "create", "delete"))
	podreader := grant("podreader", rule("nodes/pods", "get"))

	caPool := x509.NewCertPool()
	caPEM, err := os.ReadFile(cp.PKI.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	caPool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool}}, Timeout: 2 * time.Minute}
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, n.url()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	const (
		forbiddenProxy = "subresource(s)=[proxy])"
		forbiddenPods  = "subresource(s)=[pods proxy])"
	)

	// nodes/checkpoint create: a real checkpoint of the running container.
	pod := n.podName("sleeper")
	n.waitRunning("default", "sleeper", "main")
	var archive string
	n.eventually(60*time.Second, "a checkpoint with nodes/checkpoint create", func() bool {
		code, body := call("POST", "/checkpoint/default/"+pod+"/main?timeout=60", checkpointer, "")
		if code != 200 {
			t.Logf("checkpoint: %d %s", code, body)
			return false
		}
		var answer struct{ Items []string }
		if err := json.Unmarshal([]byte(body), &answer); err != nil || len(answer.Items) != 1 {
			t.Fatalf("checkpoint answer %.300q", body)
		}
		archive = filepath.Base(answer.Items[0])
		return true
	})
	// nodes/checkpoint get: list and inspect.
	if code, body := call("GET", "/checkpoints", checkpointer, ""); code != 200 || !strings.Contains(body, archive) {
		t.Fatalf("list with nodes/checkpoint get: %d %.300s", code, body)
	}
	if code, body := call("GET", "/checkpoints/"+archive, checkpointer, ""); code != 200 || !strings.Contains(body, pod) {
		t.Fatalf("inspect with nodes/checkpoint get: %d %.300s", code, body)
	}

	// What hands out memory or starts and stops workloads asks for nodes/proxy.
	denied := []struct{ method, path, body, forbidden string }{
		{"GET", "/checkpoints/" + archive + "/content", "", "verb=get, resource=nodes, " + forbiddenProxy},
		{"POST", "/restores", `{}`, "verb=create, resource=nodes, " + forbiddenProxy},
		{"DELETE", "/restores/anything", "", "verb=delete, resource=nodes, " + forbiddenProxy},
		{"POST", "/pods/default/" + pod + "/stop", "", "verb=create, resource=nodes, " + forbiddenProxy},
		{"POST", "/exec/default/" + pod + "/main?command=true&output=1", "", "verb=create, resource=nodes, " + forbiddenProxy},
		{"GET", "/exec/default/" + pod + "/main?command=true&output=1", "", "verb=get, resource=nodes, " + forbiddenProxy},
		{"GET", "/containerLogs/default/" + pod + "/main", "", "verb=get, resource=nodes, " + forbiddenProxy},
		{"GET", "/pods", "", "verb=get, resource=nodes, " + forbiddenPods},
		{"GET", "/runningpods/", "", "verb=get, resource=nodes, " + forbiddenPods},
	}
	for _, d := range denied {
		code, body := call(d.method, d.path, checkpointer, d.body)
		if code != 403 || !strings.Contains(body, "Forbidden (user=system:serviceaccount:default:checkpointer, "+d.forbidden) {
			t.Errorf("%s %s with only nodes/checkpoint: %d %.200q, want 403 %s", d.method, d.path, code, body, d.forbidden)
		}
	}
	// The archive is still there, and the pod still runs.
	if code, _ := call("GET", "/checkpoints/"+archive, checkpointer, ""); code != 200 {
		t.Fatalf("archive gone: %d", code)
	}

	// nodes/proxy gets through to every handler.
	code, body := call("GET", "/checkpoints/"+archive+"/content", proxier, "")
	if code != 200 || len(body) == 0 {
		t.Fatalf("content with nodes/proxy get: %d (%d bytes)", code, len(body))
	}
	if code, body := call("POST", "/restores", proxier, `{}`); code == 401 || code == 403 || code/100 == 2 {
		t.Errorf("POST /restores with nodes/proxy create and an empty request: %d %.300q, want the handler's refusal", code, body)
	}
	if code, body := call("POST", "/pods/default/no-such-pod/stop", proxier, ""); code != 404 {
		t.Errorf("stop of a pod that does not exist with nodes/proxy create: %d %.300q, want the handler's 404", code, body)
	}
	var uid string
	code, body = call("GET", "/pods", proxier, "")
	if code != 200 {
		t.Fatalf("/pods with nodes/proxy (the fallback): %d %.300q", code, body)
	}
	var list v1.PodList
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Items {
		if p.Name == pod {
			uid = string(p.UID)
		}
	}
	if uid == "" {
		t.Fatalf("%s not in /pods", pod)
	}
	// Through authorization, the handler answers: without an upgrade the
	// stream is refused (400), the UID of another pod instance is 404.
	if code, body := call("POST", "/exec/default/"+pod+"/main?command=true&output=1", proxier, ""); code == 401 || code == 403 || code == 404 {
		t.Errorf("exec with nodes/proxy create: %d %.300q, want the handler's answer", code, body)
	}
	if code, body := call("POST", "/exec/default/"+pod+"/not-"+uid+"/main?command=true&output=1", proxier, ""); code != 404 || !strings.Contains(body, "pod not found") {
		t.Errorf("exec naming another UID: %d %.300q, want 404 pod not found", code, body)
	}
	if code, body := call("POST", "/portForward/default/"+pod+"/not-"+uid+"?port=80", proxier, ""); code != 404 || !strings.Contains(body, "pod not found") {
		t.Errorf("port forward naming another UID: %d %.300q, want 404 pod not found", code, body)
	}
	// HEAD has the kubelet's empty verb, which get does not grant.
	if code, _ := call("HEAD", "/healthz", proxier, ""); code != 403 {
		t.Errorf("HEAD /healthz with nodes/proxy get: %d, want 403 (the kubelet's empty verb)", code)
	}

	// nodes/pods alone: the fine-grained /pods, nothing that needs proxy.
	if code, body := call("GET", "/pods", podreader, ""); code != 200 || !strings.Contains(body, pod) {
		t.Errorf("/pods with nodes/pods get: %d %.200q", code, body)
	}
	if code, body := call("GET", "/runningpods/", podreader, ""); code != 200 {
		t.Errorf("/runningpods/ with nodes/pods get: %d %.200q", code, body)
	}
	for _, path := range []string{"/exec/default/" + pod + "/main?command=true&output=1", "/containerLogs/default/" + pod + "/main",
		"/checkpoints", "/checkpoints/" + archive + "/content", "/configz"} {
		if code, body := call("GET", path, podreader, ""); code != 403 {
			t.Errorf("GET %s with only nodes/pods: %d %.200q, want 403", path, code, body)
		}
	}
	// nodes/checkpoint delete removes the archive.
	if code, body := call("DELETE", "/checkpoints/"+archive, checkpointer, ""); code != 204 {
		t.Errorf("delete with nodes/checkpoint delete: %d %.300q", code, body)
	}
}
