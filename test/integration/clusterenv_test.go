package integration

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runningContainer waits for the pod's one container to run and returns its id.
func runningContainer(t *testing.T, n *node, uid types.UID) string {
	t.Helper()
	var id string
	n.eventually(120*time.Second, "pod "+string(uid)+"'s container running", func() bool {
		list, err := n.cri.ListContainers(context.Background(), &runtimeapi.ContainerFilter{
			LabelSelector: map[string]string{"io.kubernetes.pod.uid": string(uid)},
			State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
		if err == nil && len(list) == 1 {
			id = list[0].Id
		}
		return id != ""
	})
	return id
}

// envOf is a container's environment, read from inside it.
func envOf(n *node, id string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(execOut(n, id, "env"), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// TestClusterWorkloadEnvironment: what an ordinary Deployment's pod sees
// from inside its container on knode, against the real kube-apiserver:
// the service environment (the kubernetes Service and the namespace's
// Services, from knode's watch, also for one created after the start),
// the cluster DNS in resolv.conf (a DNS Service made here, as a cluster's
// add-on would), Default and None policies, every fieldRef and a
// resourceFieldRef, the ServiceAccount admission's kube-api-access volume
// with a token the API server accepts (TokenReview), a projected token
// with its own audience, a downwardAPI file rewritten after a label patch,
// and a persistent volume claim refused with its type named.
func TestClusterWorkloadEnvironment(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	n := newNode(t)
	ctx := context.Background()
	const ns = "shop"
	if _, err := cp.core.Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// What the controller-manager would make: the namespace's default
	// ServiceAccount and its root CA ConfigMap.
	if _, err := cp.core.ServiceAccounts(ns).Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(cp.PKI.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.core.ConfigMaps(ns).Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"},
		Data: map[string]string{"ca.crt": string(ca)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	service := func(namespace, name, clusterIP string, ports ...v1.ServicePort) {
		t.Helper()
		if _, err := cp.core.Services(namespace).Create(ctx, &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: v1.ServiceSpec{ClusterIP: clusterIP, Ports: ports}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	service("kube-system", "kube-dns", "10.0.0.10", v1.ServicePort{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP},
		v1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: v1.ProtocolTCP})
	service(ns, "backend-api", "10.0.0.20", v1.ServicePort{Name: "http", Port: 80}, v1.ServicePort{Name: "metrics", Port: 9090})
	service(ns, "headless", v1.ClusterIPNone, v1.ServicePort{Port: 5432})
	service("default", "elsewhere", "10.0.0.30", v1.ServicePort{Port: 8080})
	var kubeSvc *v1.Service
	n.eventually(60*time.Second, "the API server's kubernetes Service", func() bool {
		kubeSvc, err = cp.core.Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		return err == nil
	})

	kc := cp.nodeKubeconfig(t, n)
	n.startKnode("--kubeconfig", kc, "--sync-frequency", "5m", "--cluster-dns", "10.0.0.10", "--cluster-domain", "cluster.local")

	grace := int64(1)
	exp := int64(3600)
	no := false
	podSpec := func(name string, edit func(*v1.Pod)) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
			Spec: v1.PodSpec{NodeName: n.name, TerminationGracePeriodSeconds: &grace,
				Containers: []v1.Container{{Name: "main", Image: busybox, Command: []string{"sleep", "3600"}}}}}
		edit(p)
		created, err := cp.core.Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return created
	}
	field := func(path string) *v1.EnvVarSource {
		return &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: path}}
	}
	web := podSpec("web", func(p *v1.Pod) {
		c := &p.Spec.Containers[0]
		c.Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}
		c.Env = []v1.EnvVar{
			{Name: "BACKEND_URL", Value: "http://$(BACKEND_API_SERVICE_HOST):$(BACKEND_API_SERVICE_PORT_HTTP)"},
			{Name: "POD_IP", ValueFrom: field("status.podIP")}, {Name: "POD_IPS", ValueFrom: field("status.podIPs")},
			{Name: "HOST_IP", ValueFrom: field("status.hostIP")}, {Name: "NODE", ValueFrom: field("spec.nodeName")},
			{Name: "SA", ValueFrom: field("spec.serviceAccountName")}, {Name: "APP", ValueFrom: field("metadata.labels['app']")},
			{Name: "MEM_MI", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
		}
		p.Spec.Volumes = []v1.Volume{{Name: "extra", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Audience: "knode-test", ExpirationSeconds: &exp, Path: "token"}},
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				{Path: "mem", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "main", Resource: "limits.memory"}}}}},
		}}}}}
		c.VolumeMounts = []v1.VolumeMount{{Name: "extra", MountPath: "/extra"}}
	})
	plain := podSpec("plain", func(p *v1.Pod) {
		p.Spec.EnableServiceLinks = &no
		p.Spec.DNSPolicy = v1.DNSDefault
		p.Spec.AutomountServiceAccountToken = &no
	})
	two := "2"
	custom := podSpec("custom-dns", func(p *v1.Pod) {
		p.Spec.AutomountServiceAccountToken = &no
		p.Spec.DNSPolicy = v1.DNSNone
		p.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"192.0.2.53"}, Searches: []string{"my.example"},
			Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "edns0"}}}
	})
	claim := podSpec("claim", func(p *v1.Pod) {
		p.Spec.AutomountServiceAccountToken = &no
		p.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{
			PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
	})

	// The service environment and the downward API env.
	webID := runningContainer(t, n, web.UID)
	env := envOf(n, webID)
	want := map[string]string{
		"KUBERNETES_SERVICE_HOST":          kubeSvc.Spec.ClusterIP,
		"KUBERNETES_SERVICE_PORT":          "443",
		"KUBERNETES_SERVICE_PORT_HTTPS":    "443",
		"KUBERNETES_PORT":                  "tcp://" + kubeSvc.Spec.ClusterIP + ":443",
		"KUBERNETES_PORT_443_TCP_ADDR":     kubeSvc.Spec.ClusterIP,
		"BACKEND_API_SERVICE_HOST":         "10.0.0.20",
		"BACKEND_API_SERVICE_PORT":         "80",
		"BACKEND_API_SERVICE_PORT_METRICS": "9090",
		"BACKEND_API_PORT_9090_TCP":        "tcp://10.0.0.20:9090",
		"BACKEND_API_PORT_9090_TCP_PROTO":  "tcp",
		"BACKEND_URL":                      "http://10.0.0.20:80",
		"NODE":                             n.name,
		"SA":                               "default",
		"APP":                              "web",
		"MEM_MI":                           "64",
		"KUBERNETES_PORT_443_TCP_PROTO":    "tcp",
		"BACKEND_API_PORT_80_TCP":          "tcp://10.0.0.20:80",
		"BACKEND_API_SERVICE_PORT_HTTP":    "80",
		"BACKEND_API_PORT":                 "tcp://10.0.0.20:80",
		"BACKEND_API_PORT_80_TCP_ADDR":     "10.0.0.20",
		"BACKEND_API_PORT_80_TCP_PORT":     "80",
		"BACKEND_API_PORT_9090_TCP_ADDR":   "10.0.0.20",
		"KUBERNETES_PORT_443_TCP":          "tcp://" + kubeSvc.Spec.ClusterIP + ":443",
		"KUBERNETES_PORT_443_TCP_PORT":     "443",
		"BACKEND_API_PORT_9090_TCP_PORT":   "9090",
		"BACKEND_API_PORT_80_TCP_PROTO":    "tcp",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("web: %s=%q, want %q", k, env[k], v)
		}
	}
	for k := range env {
		if strings.HasPrefix(k, "HEADLESS_") || strings.HasPrefix(k, "ELSEWHERE_") || strings.HasPrefix(k, "KUBE_DNS_") {
			t.Errorf("web: %s is set: headless Services and other namespaces' Services give no variables", k)
		}
	}
	var apiPod *v1.Pod
	n.eventually(30*time.Second, "web's pod IP in its API status", func() bool {
		apiPod, err = cp.core.Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && apiPod.Status.PodIP != ""
	})
	if env["HOST_IP"] == "" || env["HOST_IP"] != apiPod.Status.HostIP {
		t.Errorf("web: HOST_IP=%q, want the status's %q", env["HOST_IP"], apiPod.Status.HostIP)
	}
	if env["POD_IP"] != apiPod.Status.PodIP || env["POD_IPS"] != apiPod.Status.PodIP {
		t.Errorf("web: POD_IP=%q POD_IPS=%q, want the status's %q", env["POD_IP"], env["POD_IPS"], apiPod.Status.PodIP)
	}

	// Cluster DNS.
	resolv := execOut(n, webID, "cat", "/etc/resolv.conf")
	for _, line := range []string{"nameserver 10.0.0.10", "search shop.svc.cluster.local svc.cluster.local cluster.local", "options ndots:5"} {
		if !strings.Contains(resolv, line) {
			t.Errorf("web's resolv.conf lacks %q:\n%s", line, resolv)
		}
	}
	if strings.Count(resolv, "nameserver") != 1 {
		t.Errorf("web's resolv.conf has other nameservers than the cluster's:\n%s", resolv)
	}

	// The kube-api-access volume the ServiceAccount admission added, and
	// the projected token with an audience: the API server accepts both.
	authn := func() authnclient.AuthenticationV1Interface {
		cfg, err := clientcmd.BuildConfigFromFlags("", cp.kubeconfig(t, "admin", "admin", "system:masters"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := authnclient.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}()
	review := func(what, token string, audiences []string) {
		t.Helper()
		tr, err := authn.TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: audiences}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: TokenReview: %v", what, err)
		}
		if !tr.Status.Authenticated || tr.Status.User.Username != "system:serviceaccount:shop:default" {
			t.Errorf("%s: review %+v", what, tr.Status)
		}
		if len(audiences) > 0 && !slices.Equal(tr.Status.Audiences, audiences) {
			t.Errorf("%s: audiences %v, want %v", what, tr.Status.Audiences, audiences)
		}
		if podName := tr.Status.User.Extra["authentication.kubernetes.io/pod-name"]; len(podName) != 1 || podName[0] != "web" {
			t.Errorf("%s: token bound to %v, want the pod web", what, podName)
		}
	}
	const saDir = "/var/run/secrets/kubernetes.io/serviceaccount/"
	review("kube-api-access token", execOut(n, webID, "cat", saDir+"token"), nil)
	if got := execOut(n, webID, "cat", saDir+"namespace"); got != ns {
		t.Errorf("kube-api-access namespace %q", got)
	}
	if got := execOut(n, webID, "cat", saDir+"ca.crt"); got != string(ca) {
		t.Errorf("kube-api-access ca.crt is not the cluster's CA:\n%s", got)
	}
	review("projected token for knode-test", execOut(n, webID, "cat", "/extra/token"), []string{"knode-test"})
	if got := execOut(n, webID, "cat", "/extra/mem"); got != "67108864" {
		t.Errorf("/extra/mem %q", got)
	}

	// A label patch reaches the downwardAPI file at once (the sync
	// frequency is 5 minutes here), as the kubelet remounts on a pod update.
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{"tier": "front"}}})
	if _, err := cp.core.Pods(ns).Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(60*time.Second, "web's labels file after the patch", func() bool {
		return execOut(n, webID, "cat", "/extra/labels") == "app=\"web\"\ntier=\"front\""
	})

	// A Service created after the start is in the next pod's env (the watch).
	service(ns, "late", "10.0.0.40", v1.ServicePort{Port: 7000, Protocol: v1.ProtocolUDP})
	late := podSpec("late", func(p *v1.Pod) {
		p.Spec.AutomountServiceAccountToken = &no
		// Restarted until the variable is there: the kubelet gives no
		// ordering between a Service and a pod either.
		p.Spec.Containers[0].Command = []string{"sh", "-c", `[ "$LATE_PORT" = udp://10.0.0.40:7000 ] || exit 1; exec sleep 3600`}
	})
	runningContainer(t, n, late.UID)

	// enableServiceLinks false: the kubernetes Service only; Default: the node's resolv.conf.
	plainID := runningContainer(t, n, plain.UID)
	env = envOf(n, plainID)
	if env["KUBERNETES_SERVICE_HOST"] != kubeSvc.Spec.ClusterIP {
		t.Errorf("plain: KUBERNETES_SERVICE_HOST=%q", env["KUBERNETES_SERVICE_HOST"])
	}
	if v, ok := env["BACKEND_API_SERVICE_HOST"]; ok {
		t.Errorf("plain: BACKEND_API_SERVICE_HOST=%q with enableServiceLinks false", v)
	}
	hostResolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	resolv = execOut(n, plainID, "cat", "/etc/resolv.conf")
	for _, line := range strings.Split(string(hostResolv), "\n") {
		if strings.HasPrefix(line, "nameserver ") && !strings.Contains(resolv, line) {
			t.Errorf("plain (Default) resolv.conf lacks the node's %q:\n%s", line, resolv)
		}
	}
	if strings.Contains(resolv, "10.0.0.10") || strings.Contains(resolv, "svc.cluster.local") {
		t.Errorf("plain (Default) resolv.conf has the cluster's DNS:\n%s", resolv)
	}

	// None: the pod's dnsConfig alone.
	resolv = execOut(n, runningContainer(t, n, custom.UID), "cat", "/etc/resolv.conf")
	for _, line := range []string{"nameserver 192.0.2.53", "search my.example", "options ndots:2 edns0"} {
		if !strings.Contains(resolv, line) {
			t.Errorf("custom-dns resolv.conf lacks %q:\n%s", line, resolv)
		}
	}
	if strings.Count(resolv, "nameserver") != 1 {
		t.Errorf("custom-dns resolv.conf has other nameservers:\n%s", resolv)
	}

	// A persistent volume claim is refused with its type named.
	wantMsg := `volume "data": persistentVolumeClaim volumes are not supported by knode (supported: hostPath, emptyDir, configMap, secret, projected, downwardAPI)`
	n.eventually(60*time.Second, "claim: CreateContainerConfigError in the API status", func() bool {
		p, err := cp.core.Pods(ns).Get(ctx, claim.Name, metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		w := p.Status.ContainerStatuses[0].State.Waiting
		return w != nil && w.Reason == "CreateContainerConfigError" && w.Message == wantMsg && p.Status.Phase == v1.PodPending
	})
	if sbs := n.sandboxes(ns, claim.Name); len(sbs) != 0 {
		t.Errorf("claim: %d sandboxes for a pod whose volume cannot be made", len(sbs))
	}
	n.eventually(30*time.Second, "claim: the FailedMount event", func() bool {
		evs, err := cp.core.Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=claim"})
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedMount" && e.Type == v1.EventTypeWarning && e.Message == wantMsg {
				return true
			}
		}
		return false
	})
}
