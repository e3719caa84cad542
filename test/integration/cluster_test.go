package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	coreclient "k8s.io/client-go/kubernetes/typed/core/v1"
	rbacclient "k8s.io/client-go/kubernetes/typed/rbac/v1"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/test/controlplane"
)

// controlPlane is a real etcd and kube-apiserver on loopback, with clients
// as the cluster's admin.
type controlPlane struct {
	*controlplane.ControlPlane
	t    *testing.T
	core coreclient.CoreV1Interface
	coo  coordinationclient.CoordinationV1Interface
	rbac rbacclient.RbacV1Interface
}

func newControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	bin := filepath.Dir(tool(t, "hack/setup-control-plane.sh", "control-plane", "bin", "kube-apiserver"))
	c, err := controlplane.Start(bin, t.TempDir())
	if c != nil {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("control plane logs:\n%s", c.Logs(30))
			}
			c.Stop()
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{ControlPlane: c, t: t}
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.kubeconfig(t, "admin", "admin", "system:masters"))
	if err != nil {
		t.Fatal(err)
	}
	if cp.core, err = coreclient.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if cp.coo, err = coordinationclient.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if cp.rbac, err = rbacclient.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return cp
}

// client is a core client for user, without groups.
func (cp *controlPlane) client(t *testing.T, user string) coreclient.CoreV1Interface {
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.kubeconfig(t, user, user))
	if err != nil {
		t.Fatal(err)
	}
	c, err := coreclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kubeconfig writes a kubeconfig for a client certificate of user in groups.
func (cp *controlPlane) kubeconfig(t *testing.T, name, user string, groups ...string) string {
	path, err := cp.Kubeconfig(name, user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// nodeKubeconfig is a kubeconfig with node n's own identity
// (system:node:<name> in system:nodes), as the kubelet's.
func (cp *controlPlane) nodeKubeconfig(t *testing.T, n *node) string {
	return cp.kubeconfig(t, n.name, "system:node:"+n.name, "system:nodes")
}

// defaultServiceAccount makes the "default" ServiceAccount of namespace
// default, which kube-controller-manager would (none runs in these tests).
func (cp *controlPlane) defaultServiceAccount(t *testing.T) {
	t.Helper()
	_, err := cp.core.ServiceAccounts("default").Create(context.Background(), &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// newClusterNode is a control plane with knode running as its node (extra
// flags added) and the default ServiceAccount made.
func newClusterNode(t *testing.T, extra ...string) (*controlPlane, *node) {
	t.Helper()
	cp := newControlPlane(t)
	n := newNode(t)
	n.startKnode(append([]string{"--kubeconfig", cp.nodeKubeconfig(t, n)}, extra...)...)
	cp.defaultServiceAccount(t)
	return cp, n
}

func TestClusterNodeRegistration(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	n := newNode(t)
	kc := cp.nodeKubeconfig(t, n)
	n.startKnode("--kubeconfig", kc, "--node-labels", "example.com/role=test", "--device-plugin-grace-period", "3s", "--sync-frequency", "2s")
	ctx := context.Background()
	var node *v1.Node
	n.eventually(60*time.Second, "the node Ready in the API", func() bool {
		var err error
		node, err = cp.core.Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range node.Status.Conditions {
			if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
				return true
			}
		}
		return false
	})
	if !strings.HasPrefix(node.Status.NodeInfo.ContainerRuntimeVersion, "containerd://2.4.2") ||
		node.Labels["kubernetes.io/hostname"] != n.name || node.Labels["example.com/role"] != "test" ||
		node.Status.Capacity.Cpu().IsZero() || node.Status.Capacity.Memory().IsZero() {
		t.Fatalf("node: labels %v, info %+v, capacity %v", node.Labels, node.Status.NodeInfo, node.Status.Capacity)
	}
	// The kubelet's pressure conditions, measured (this machine has room).
	for _, want := range []struct {
		t      v1.NodeConditionType
		reason string
	}{{v1.NodeMemoryPressure, "KubeletHasSufficientMemory"}, {v1.NodeDiskPressure, "KubeletHasNoDiskPressure"}, {v1.NodePIDPressure, "KubeletHasSufficientPID"}} {
		found := false
		for _, c := range node.Status.Conditions {
			found = found || c.Type == want.t && c.Status == v1.ConditionFalse && c.Reason == want.reason
		}
		if !found {
			t.Errorf("no %s=False (%s) in %+v", want.t, want.reason, node.Status.Conditions)
		}
	}
	// The node's own events, as `kubectl describe node` shows them.
	n.eventually(30*time.Second, "Starting and NodeReady events for the node", func() bool {
		list, err := cp.core.Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + n.name})
		if err != nil {
			return false
		}
		seen := map[string]bool{}
		for _, e := range list.Items {
			seen[e.Reason] = true
		}
		return seen["Starting"] && seen["NodeReady"] && seen["NodeHasSufficientMemory"]
	})
	lease, err := cp.coo.Leases(v1.NamespaceNodeLease).Get(ctx, n.name, metav1.GetOptions{})
	if err != nil || lease.Spec.RenewTime == nil || time.Since(lease.Spec.RenewTime.Time) > time.Minute {
		t.Fatalf("lease: %+v %v", lease, err)
	}
	// A device plugin's resource appears in capacity and allocatable, and
	// drops to 0 when the plugin is gone for longer than the grace period.
	plugin := n.startPlugin(2, nil)
	devices := func(want int64) func() bool {
		return func() bool {
			node, err := cp.core.Nodes().Get(ctx, n.name, metav1.GetOptions{})
			if err != nil {
				return false
			}
			c, a := node.Status.Capacity[widget], node.Status.Allocatable[widget]
			_, listed := node.Status.Capacity[widget]
			return listed && c.Value() == want && a.Value() == want
		}
	}
	n.eventually(60*time.Second, "the device resource in the node status", devices(2))
	plugin.Stop()
	n.eventually(60*time.Second, "the device capacity 0 after the grace period", devices(0))
	n.startPlugin(2, nil)
	n.eventually(60*time.Second, "the device resource back in the node status", devices(2))

	// A static pod has a mirror pod in the API, with its status; it goes with the manifest.
	n.writeManifest("static.yaml", podManifest("static", "default", "Always", "exec sleep 3600"))
	n.eventually(60*time.Second, "the mirror pod Running in the API", func() bool {
		p, err := cp.core.Pods("default").Get(ctx, n.podName("static"), metav1.GetOptions{})
		return err == nil && p.Annotations["kubernetes.io/config.mirror"] != "" && p.Status.Phase == v1.PodRunning
	})
	n.removeManifest("static.yaml")
	n.eventually(60*time.Second, "the mirror pod deleted", func() bool {
		_, err := cp.core.Pods("default").Get(ctx, n.podName("static"), metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	// Pods bound to the node run, report status, and are deleted with grace.
	// (No controller-manager runs: the default ServiceAccount is made here.)
	cp.defaultServiceAccount(t)
	// ConfigMap and Secret volumes, and the projected service account token
	// the API server adds (kube-root-ca.crt is published by the
	// controller-manager, which does not run here: the test makes it).
	for _, cm := range []*v1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Name: "greeting"}, Data: map[string]string{"text": "hello from a configmap"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": "test-ca"}},
	} {
		if _, err := cp.core.ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cp.core.Secrets("default").Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"},
		Data: map[string][]byte{"password": []byte("s3cret")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	grace := int64(1)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api-pod", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: n.name, TerminationGracePeriodSeconds: &grace,
			Volumes: []v1.Volume{
				{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "greeting"}}}},
				{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "creds"}}},
			},
			Containers: []v1.Container{{Name: "main", Image: busybox,
				Command:      []string{"sh", "-c", "cat /cm/text; echo; cat /sec/password; echo; wc -c < /var/run/secrets/kubernetes.io/serviceaccount/token; exec sleep 3600"},
				VolumeMounts: []v1.VolumeMount{{Name: "cm", MountPath: "/cm"}, {Name: "sec", MountPath: "/sec"}}}}}}
	if _, err := cp.core.Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var created *v1.Pod
	n.eventually(60*time.Second, "the API pod Running in the API with its IP", func() bool {
		p, err := cp.core.Pods("default").Get(ctx, "api-pod", metav1.GetOptions{})
		created = p
		return err == nil && p.Status.Phase == v1.PodRunning && p.Status.PodIP != "" && len(p.Status.ContainerStatuses) == 1 &&
			p.Status.ContainerStatuses[0].State.Running != nil
	})
	logs, _ := filepath.Glob(filepath.Join(n.logs, "default_api-pod_"+string(created.UID), "main", "*.log"))
	n.eventually(20*time.Second, "the volumes' content in the container's output", func() bool {
		if len(logs) == 0 {
			logs, _ = filepath.Glob(filepath.Join(n.logs, "default_api-pod_"+string(created.UID), "main", "*.log"))
			return false
		}
		data, _ := os.ReadFile(logs[0])
		// The token file holds a JWT: hundreds of bytes.
		return strings.Contains(string(data), "hello from a configmap") && strings.Contains(string(data), "s3cret") &&
			regexp.MustCompile(`stdout F \d{3,}\n`).Match(data)
	})
	// The kubelet's events, as `kubectl describe pod` shows them.
	podEvents := func(name string) map[string]bool {
		list, err := cp.core.Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			return nil
		}
		reasons := map[string]bool{}
		for _, e := range list.Items {
			if e.Source.Component == "kubelet" && e.Source.Host == n.name && e.InvolvedObject.UID == created.UID {
				reasons[e.Reason] = true
			}
		}
		return reasons
	}
	n.eventually(30*time.Second, "Pulled, Created and Started events for the pod", func() bool {
		r := podEvents("api-pod")
		return r["Pulled"] && r["Created"] && r["Started"]
	})
	// Without --cluster-dns the ClusterFirst pod falls back to Default with
	// the kubelet's MissingClusterDNS warning, on the pod and on the node.
	missingDNS := `kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.`
	n.eventually(30*time.Second, "MissingClusterDNS events on the pod and on the node", func() bool {
		list, err := cp.core.Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=MissingClusterDNS"})
		if err != nil {
			return false
		}
		onPod, onNode := false, false
		for _, e := range list.Items {
			onPod = onPod || e.InvolvedObject.UID == created.UID && e.Type == v1.EventTypeWarning &&
				e.Message == `pod: "api-pod_default(`+string(created.UID)+`)". `+missingDNS
			onNode = onNode || e.InvolvedObject.Kind == "Node" && e.InvolvedObject.Name == n.name && e.Type == v1.EventTypeWarning &&
				e.Message == missingDNS && e.Source.Component == "kubelet"
		}
		return onPod && onNode
	})
	// knode doctor asks the API server for the pods bound to the node.
	out, _ := exec.Command(knodeBinary, "doctor", "dockershim", "-o", "json", "--kubeconfig", kc, "--hostname-override", n.name,
		"--root-dir", filepath.Join(n.dir, "root"), "--container-runtime-endpoint", n.endpoint()).Output()
	if !strings.Contains(string(out), `"check": "bound pods"`) || !strings.Contains(string(out), "pods bound to this node mounts the Docker socket") {
		t.Fatalf("knode doctor dockershim in cluster mode:\n%s", out)
	}
	// A ConfigMap's change reaches the running container (within the sync period).
	cm, err := cp.core.ConfigMaps("default").Get(ctx, "greeting", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["text"] = "hello again"
	if _, err := cp.core.ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	id := created.Status.ContainerStatuses[0].ContainerID[strings.Index(created.Status.ContainerStatuses[0].ContainerID, "://")+3:]
	n.eventually(30*time.Second, "the ConfigMap's new value inside the container", func() bool {
		out, _, err := n.cri.ExecSync(ctx, id, []string{"cat", "/cm/text"}, 5*time.Second)
		return err == nil && string(out) == "hello again"
	})
	greedy := pod.DeepCopy()
	greedy.Name = "greedy"
	greedy.Spec.Containers[0].Resources.Limits = v1.ResourceList{widget: *resource.NewQuantity(5, resource.DecimalSI)}
	if _, err := cp.core.Pods("default").Create(ctx, greedy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(60*time.Second, "the greedy pod Failed with UnexpectedAdmissionError in the API", func() bool {
		p, err := cp.core.Pods("default").Get(ctx, "greedy", metav1.GetOptions{})
		return err == nil && p.Status.Phase == v1.PodFailed && p.Status.Reason == "UnexpectedAdmissionError"
	})
	if err := cp.core.Pods("default").Delete(ctx, "api-pod", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	n.eventually(30*time.Second, "a Killing event for the deleted pod", func() bool { return podEvents("api-pod")["Killing"] })
	n.eventually(60*time.Second, "the pod object gone and its sandbox removed", func() bool {
		_, err := cp.core.Pods("default").Get(ctx, "api-pod", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return false
		}
		sbs, _ := n.cri.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": "api-pod"}})
		return len(sbs) == 0
	})
}

func TestClusterAuthenticationAndAuthorization(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	n := newNodeWithCRIU(t, criu41(t))
	kc := cp.nodeKubeconfig(t, n)
	nodeIP := routableIP(t)
	srvCrt, srvKey := issue(t, cp.PKI, n.name+"-serving", n.name, []net.IP{net.ParseIP("127.0.0.1"), nodeIP})
	n.startKnode("--kubeconfig", kc, "--address", "0.0.0.0", "--node-ip", nodeIP.String(),
		"--authentication-token-webhook", "--authorization-mode", "Webhook",
		"--client-ca-file", cp.PKI.CAFile, "--tls-cert-file", srvCrt, "--tls-private-key-file", srvKey)
	ctx := context.Background()
	n.eventually(60*time.Second, "the node registered", func() bool {
		_, err := cp.core.Nodes().Get(ctx, n.name, metav1.GetOptions{})
		return err == nil
	})
	n.eventually(30*time.Second, "knode's API listening", n.listening)
	rbac := cp.rbac
	rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "knode-checkpointer"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"nodes/checkpoint"}, Verbs: []string{"create"}},
			{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get"}},
		}}, metav1.CreateOptions{})
	rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "knode-checkpointer"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "knode-checkpointer"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "checkpointer", Namespace: "default"}}}, metav1.CreateOptions{})
	token := func(sa string) string {
		cp.core.ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		tr, err := cp.core.ServiceAccounts("default").CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	allowed, denied := token("checkpointer"), token("nobody")
	caPool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(cp.PKI.CAFile)
	caPool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool}}}
	call := func(method, path, bearer string) (int, string) {
		req, _ := http.NewRequest(method, n.url()+path, nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// Granted create on nodes/checkpoint: the request reaches the handler.
	if code, body := call("POST", "/checkpoint/default/nope/app", allowed); code != 404 || strings.TrimSpace(body) != "pod does not exist" {
		t.Fatalf("allowed checkpoint: %d %q", code, body)
	}
	if code, body := call("POST", "/checkpoint/default/nope/app", denied); code != 403 ||
		!strings.Contains(body, "Forbidden (user=system:serviceaccount:default:nobody, verb=create, resource=nodes, subresource(s)=[checkpoint])") {
		t.Fatalf("denied checkpoint: %d %q", code, body)
	}
	if code, body := call("GET", "/pods", allowed); code != 200 || !strings.Contains(body, `"kind":"PodList"`) {
		t.Fatalf("TokenReview-authenticated /pods: %d %q", code, body)
	}
	if code, _ := call("GET", "/pods", "not-a-token"); code != 401 {
		t.Fatalf("bad token: %d, want 401", code)
	}

	// Through the API server, which authenticates to knode with its kubelet
	// client certificate (system:masters), authorized by SubjectAccessReview.
	throughAPIServer(t, cp, n)
}

// throughAPIServer checks what reaches a node by way of the API server:
// the node proxy, `kubectl logs` and the checkpoint endpoint.
func throughAPIServer(t *testing.T, cp *controlPlane, n *node) {
	ctx := context.Background()
	rbac := cp.rbac
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "node-proxy"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get", "create"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "node-proxy"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "node-proxy"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "operator"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	operator, stranger := cp.client(t, "operator"), cp.client(t, "stranger")

	if _, err := cp.core.ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	grace := int64(1)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "talker", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: n.name, AutomountServiceAccountToken: new(bool), TerminationGracePeriodSeconds: &grace,
			Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"sh", "-c", "echo hello through the API server; exec sleep 3600"}}}}}
	if _, err := cp.core.Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(60*time.Second, "the pod Running in the API", func() bool {
		p, err := cp.core.Pods("default").Get(ctx, "talker", metav1.GetOptions{})
		return err == nil && p.Status.Phase == v1.PodRunning
	})

	// kubectl get --raw /api/v1/nodes/<node>/proxy/pods
	raw, err := operator.RESTClient().Get().AbsPath("/api/v1/nodes", n.name, "proxy", "pods").DoRaw(ctx)
	if err != nil || !strings.Contains(string(raw), `"kind":"PodList"`) || !strings.Contains(string(raw), `"name":"talker"`) {
		t.Fatalf("node proxy /pods: %v %.300s", err, raw)
	}
	if _, err := stranger.RESTClient().Get().AbsPath("/api/v1/nodes", n.name, "proxy", "pods").DoRaw(ctx); !apierrors.IsForbidden(err) {
		t.Fatalf("node proxy for a user without nodes/proxy: %v, want Forbidden", err)
	}
	// kubectl logs talker (allowed by pods/log, which the admin has)
	n.eventually(20*time.Second, "kubectl logs through the API server", func() bool {
		logs, err := cp.core.Pods("default").GetLogs("talker", &v1.PodLogOptions{Container: "main"}).DoRaw(ctx)
		return err == nil && string(logs) == "hello through the API server\n"
	})
	tailed, err := cp.core.Pods("default").GetLogs("talker", &v1.PodLogOptions{Container: "main", Timestamps: true, TailLines: new(int64(1))}).DoRaw(ctx)
	if err != nil || !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\S+ hello through the API server\n$`).Match(tailed) {
		t.Fatalf("kubectl logs --timestamps --tail=1: %v %q", err, tailed)
	}
	// kubectl exec talker -- sh -c '...': the API server upgrades to knode's /exec.
	adminCfg, err := clientcmd.BuildConfigFromFlags("", cp.kubeconfig(t, "exec-admin", "admin", "system:masters"))
	if err != nil {
		t.Fatal(err)
	}
	execReq := cp.core.RESTClient().Post().Namespace("default").Resource("pods").Name("talker").SubResource("exec").
		Param("container", "main").Param("command", "sh").Param("command", "-c").Param("command", "echo exec via $0").
		Param("stdout", "true").Param("stderr", "true")
	if stdout, stderr, err := execIn(ctx, adminCfg, execReq.URL(), ""); err != nil || stdout != "exec via sh\n" {
		t.Fatalf("kubectl exec through the API server: %q %q %v", stdout, stderr, err)
	}
	// The checkpoint endpoint through the node proxy: a real archive.
	raw, err = operator.RESTClient().Post().AbsPath("/api/v1/nodes", n.name, "proxy", "checkpoint", "default", "talker", "main").DoRaw(ctx)
	if err != nil {
		t.Fatalf("checkpoint through the node proxy: %v %s", err, raw)
	}
	var answer struct{ Items []string }
	if err := json.Unmarshal(raw, &answer); err != nil || len(answer.Items) != 1 {
		t.Fatalf("checkpoint answer %s: %v", raw, err)
	}
	if fi, err := os.Stat(answer.Items[0]); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
		t.Fatalf("archive %s: %v %v", answer.Items[0], fi, err)
	}
	if _, err := stranger.RESTClient().Post().AbsPath("/api/v1/nodes", n.name, "proxy", "checkpoint", "default", "talker", "main").DoRaw(ctx); !apierrors.IsForbidden(err) {
		t.Fatalf("checkpoint through the proxy for a user without nodes/proxy: %v, want Forbidden", err)
	}
}

// routableIP gives a node an address the API server's node proxy will dial:
// the proxy refuses loopback addresses ("address not allowed"). It is this
// machine's own address (the default route's interface), which nodes share
// on their own ports; traffic to it never leaves the machine.
func routableIP(t *testing.T) net.IP {
	t.Helper()
	ip, _, err := controlplane.MachineAddress()
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

func nodeReady(cp *controlPlane, name string) (bool, string) {
	node, err := cp.core.Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	for _, c := range node.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue, c.Message
		}
	}
	return false, "no Ready condition"
}

func TestClusterOutagesAndSeveralNodes(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	a, b := newNode(t), newNode(t)
	var kubeconfigs []string
	for _, n := range []*node{a, b} {
		kubeconfigs = append(kubeconfigs, cp.nodeKubeconfig(t, n))
		n.startKnode("--kubeconfig", kubeconfigs[len(kubeconfigs)-1])
	}
	// Two agents on one machine are two nodes.
	for _, n := range []*node{a, b} {
		n.eventually(60*time.Second, n.name+" Ready", func() bool { ok, _ := nodeReady(cp, n.name); return ok })
	}
	ctx := context.Background()
	cp.defaultServiceAccount(t)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "survivor", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: a.name, AutomountServiceAccountToken: new(bool),
			Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}}
	if _, err := cp.core.Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := func() string {
		cs, _ := a.cri.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": "survivor"},
			State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
		if len(cs) != 1 {
			return ""
		}
		return cs[0].Id
	}
	var id string
	a.eventually(60*time.Second, "the pod running on node A", func() bool { id = running(); return id != "" })

	// The API server is away for 20 s: nothing is lost, and the node is Ready again after.
	cp.StopAPIServer()
	time.Sleep(20 * time.Second)
	if running() != id {
		t.Fatal("the pod was disturbed while the API server was away")
	}
	if err := cp.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	if err := cp.WaitReady(90 * time.Second); err != nil {
		t.Fatal(err)
	}
	a.eventually(60*time.Second, "node A Ready after the outage", func() bool {
		ok, _ := nodeReady(cp, a.name)
		p, err := cp.core.Pods("default").Get(ctx, "survivor", metav1.GetOptions{})
		return ok && err == nil && p.Status.Phase == v1.PodRunning
	})
	if running() != id {
		t.Fatal("the pod was restarted after the API server came back")
	}

	// The runtime goes away: the node turns NotReady with a message, then Ready again.
	a.runtime.Stop(20 * time.Second)
	a.eventually(60*time.Second, "node A NotReady", func() bool {
		ok, msg := nodeReady(cp, a.name)
		return !ok && strings.Contains(msg, "container runtime is down")
	})
	a.startRuntime()
	a.eventually(60*time.Second, "node A Ready again", func() bool { ok, _ := nodeReady(cp, a.name); return ok })

	// knode restarts (stopped as systemd would): the pod runs on untouched,
	// and the new knode goes on reporting it, through to its deletion.
	id = running()
	if err := a.knode.terminate(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if running() != id {
		t.Fatal("stopping knode stopped the pod")
	}
	a.startKnode("--kubeconfig", kubeconfigs[0])
	a.eventually(30*time.Second, "knode running again", func() bool { return strings.Count(a.knodeLog(), "knode is running") == 2 })
	time.Sleep(4 * time.Second) // a relist and a status round: nothing may change
	if running() != id {
		t.Fatal("the pod was restarted after knode restarted")
	}
	grace := int64(1)
	if err := cp.core.Pods("default").Delete(ctx, "survivor", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	a.eventually(60*time.Second, "the pod stopped and its object gone", func() bool {
		_, err := cp.core.Pods("default").Get(ctx, "survivor", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && running() == ""
	})
}

// Under memory pressure (a threshold set above what the machine has), the
// node reports MemoryPressure and an API pod is evicted: it ends Failed,
// reason Evicted, as with the kubelet; a static pod is not evicted.
func TestClusterEviction(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	n := newNode(t)
	n.writeManifest("static.yaml", podManifest("static", "default", "Always", "exec sleep 3600"))
	n.startKnode("--kubeconfig", cp.nodeKubeconfig(t, n),
		"--eviction-hard", "memory.available<100Ti")
	ctx := context.Background()
	n.eventually(60*time.Second, "MemoryPressure True in the node status", func() bool {
		node, err := cp.core.Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range node.Status.Conditions {
			if c.Type == v1.NodeMemoryPressure {
				return c.Status == v1.ConditionTrue && c.Reason == "KubeletHasInsufficientMemory"
			}
		}
		return false
	})
	cp.defaultServiceAccount(t)
	// A Burstable pod (it requests CPU) is admitted, then evicted: it uses
	// more memory than it requests. (A memory request would not fit: the
	// threshold leaves no allocatable memory, and admission says OutOfmemory.)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "victim", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: n.name, AutomountServiceAccountToken: new(bool),
			Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"memhog", "16"},
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("10m")}}}}}}
	// A BestEffort pod is refused at admission, as the kubelet refuses it.
	bestEffort := pod.DeepCopy()
	bestEffort.Name = "refused"
	bestEffort.Spec.Containers[0].Resources = v1.ResourceRequirements{}
	for _, p := range []*v1.Pod{pod, bestEffort} {
		if _, err := cp.core.Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	failed := func(name, message string) func() bool {
		return func() bool {
			p, err := cp.core.Pods("default").Get(ctx, name, metav1.GetOptions{})
			return err == nil && p.Status.Phase == v1.PodFailed && p.Status.Reason == "Evicted" && strings.HasPrefix(p.Status.Message, message)
		}
	}
	n.eventually(60*time.Second, "the BestEffort pod refused", failed("refused", "The node had condition: [MemoryPressure]."))
	n.eventually(60*time.Second, "the Burstable pod evicted", failed("victim", "The node was low on resource: memory."))
	// With the kubelet's DisruptionTarget condition, as node-pressure
	// evictions have it (the refused pod was never started: none).
	n.eventually(30*time.Second, "the evicted pod's DisruptionTarget condition", func() bool {
		p, err := cp.core.Pods("default").Get(ctx, "victim", metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range p.Status.Conditions {
			if c.Type == v1.DisruptionTarget {
				return c.Status == v1.ConditionTrue && c.Reason == v1.PodReasonTerminationByKubelet && c.Message == p.Status.Message
			}
		}
		return false
	})
	// Its container runs no more.
	n.eventually(30*time.Second, "the evicted pod's container stopped", func() bool {
		cs, err := n.cri.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": "victim"}})
		if err != nil {
			return false
		}
		for _, c := range cs {
			if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				return false
			}
		}
		return true
	})
	if n.running("default", "static", "main") == nil {
		t.Fatal("the static pod was evicted")
	}
}
