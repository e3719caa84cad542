package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestClusterRestorePeersAndGate: in cluster mode POST /restores trusts the
// Node objects' addresses at their kubelet port, and nothing else; pods
// from the API server cannot restore while the ContainerCheckpoint gate is
// off, even when they claim to be static pods.
func TestClusterRestorePeersAndGate(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	pki := newTestPKI(t)
	hc, _ := operatorClient(t, pki)
	ctx := context.Background()

	a := newFakeNode(t)
	a.writeManifest("web.yaml", fakePodManifest("web", "app"))
	a.startKnode(append(clusterFlags(t, pki, a.name), "--runtime-request-timeout", "30s", "--node-ip", "127.0.0.1",
		"--kubeconfig", cp.kubeconfig(t, a.name, "system:node:"+a.name, "system:nodes"))...)
	b := newFakeNode(t)
	b.startKnode(append(clusterFlags(t, pki, b.name), "--feature-gates", "ContainerCheckpoint=false", "--node-ip", "127.0.0.1",
		"--kubeconfig", cp.kubeconfig(t, b.name, "system:node:"+b.name, "system:nodes"))...)
	for _, n := range []*node{a, b} {
		n.eventually(60*time.Second, n.name+" registered", func() bool {
			node, err := cp.core.Nodes().Get(ctx, n.name, metav1.GetOptions{})
			return err == nil && node.Status.DaemonEndpoints.KubeletEndpoint.Port == int32(n.port)
		})
	}
	var archive string
	a.eventually(60*time.Second, "a checkpoint of web/app on A", func() bool {
		resp, err := hc.Post(a.url()+a.checkpointPath("default", "web", "app", ""), "", nil)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var answer struct{ Items []string }
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&answer) != nil || len(answer.Items) != 1 {
			return false
		}
		archive = filepath.Base(answer.Items[0])
		return true
	})

	// Nodes may read only their own Node object (the Node authorizer):
	// until the operator lets them list Nodes, B cannot tell, and says so.
	code, body := postRestore(t, hc, b, map[string]string{"source": a.url() + "/checkpoints/" + archive, "name": "moved"})
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "PeersUnavailable: ") || strings.Contains(body, "forbidden") {
		t.Fatalf("without list on nodes: %d %q", code, body)
	}
	if _, err := cp.rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "knode-restore-peers"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "knode-restore-peers"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "knode-restore-peers"},
		Subjects: []rbacv1.Subject{{Kind: "Group", Name: "system:nodes", APIGroup: "rbac.authorization.k8s.io"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A is a Node at 127.0.0.1, its kubelet port: B pulls from it.
	b.eventually(30*time.Second, "B to pull from the Node A", func() bool {
		code, body = postRestore(t, hc, b, map[string]string{"source": a.url() + "/checkpoints/" + archive, "name": "moved"})
		return code != http.StatusServiceUnavailable // RBAC takes a moment to apply
	})
	if code != http.StatusCreated {
		t.Fatalf("from a Node of the cluster: %d %q", code, body)
	}
	// The same address at a port no Node serves on is not a node's API.
	other := "https://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/checkpoints/" + archive
	if code, body = postRestore(t, hc, b, map[string]string{"source": other, "name": "other"}); code != http.StatusForbidden ||
		!strings.HasPrefix(body, "UntrustedSource: ") {
		t.Fatalf("from an address no Node has: %d %q", code, body)
	}

	// API pods with the gate off: refused, the spoofed source included.
	cp.defaultServiceAccount(t)
	for _, name := range []string{"api-restore", "api-claims-static"} {
		ann := map[string]string{"checkpoint.knode.io/restore-main": archive}
		if name == "api-claims-static" {
			ann["kubernetes.io/config.source"] = "file"
		}
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: ann},
			Spec: v1.PodSpec{NodeName: b.name, Containers: []v1.Container{{Name: "main", Image: "fake/image:1"}}}}
		if _, err := cp.core.Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"api-restore", "api-claims-static"} {
		var last v1.PodStatus
		b.eventually(60*time.Second, name+" refused for the gate", func() bool {
			p, err := cp.core.Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false
			}
			last = p.Status
			return p.Status.Reason == "CheckpointNotAllowed"
		})
		if !strings.Contains(last.Message, "ContainerCheckpoint feature gate") {
			t.Fatalf("%s: %q", name, last.Message)
		}
	}
}
