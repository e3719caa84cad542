package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreclient "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"knode.io/knode/test/controlplane"
)

// benchCluster measures cluster mode against a real etcd and kube-apiserver:
// the API-visible start latency of pods created with nodeName (create →
// status Running, seen through a watch) and the API requests knode makes
// per pod start; then the API server load of many idle agents (sharing one
// containerd), counted by the agents and by the API server.
func benchCluster(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	pods := fs.Int("pods", 20, "pods started one after another on one node")
	agents := fs.Int("agents", 50, "idle agents registered to the API server")
	window := fs.Duration("window", 60*time.Second, "how long the idle agents are measured")
	services := fs.Int("services", 200, "Services created before knode joins, for its Service watch")
	linked := fs.Int("linked", 100, "how many of the Services are in the pods' namespace (the rest in another), so each container's env carries their variables")
	clusterDNS := fs.String("cluster-dns", "10.0.0.10", "knode's --cluster-dns, as a cluster's node has one (empty: none; a ClusterFirst pod then adds a MissingClusterDNS event)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tools := os.Getenv("KNODE_TOOLS_DIR")
	if tools == "" {
		tools = "/usr/local/lib/knode-ci"
	}
	cpDir, err := os.MkdirTemp("/tmp", "knbcp")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cpDir)
	cp, err := controlplane.Start(filepath.Join(tools, "control-plane", "bin"), cpDir)
	if err != nil {
		return err
	}
	defer cp.Stop()
	adminConfig, err := cp.Kubeconfig("admin", "admin", "system:masters")
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", adminConfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400
	core, err := coreclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if _, err := core.ServiceAccounts("default").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		return err
	}

	if err := createServices(ctx, core, *services, *linked); err != nil {
		return err
	}

	e, err := newEnv(false, "")
	if err != nil {
		return err
	}
	defer e.close()
	kc, err := cp.Kubeconfig("bench", "system:node:bench", "system:nodes")
	if err != nil {
		return err
	}
	knodeArgs := []string{"--kubeconfig", kc}
	if *clusterDNS != "" {
		knodeArgs = append(knodeArgs, "--cluster-dns", *clusterDNS)
	}
	if err := e.startKnode(knodeArgs...); err != nil {
		return err
	}
	if err := waitNodesReady(ctx, core, []string{"bench"}, time.Minute); err != nil {
		return err
	}
	client, err := e.httpClient(1)
	if err != nil {
		return err
	}
	before, err := apiRequests(client, e.url("/metrics"))
	if err != nil {
		return err
	}
	began := time.Now()
	var lat durations
	for i := 0; i < *pods; i++ {
		d, err := startAPIPod(ctx, core, fmt.Sprintf("p%d", i), "bench")
		if err != nil {
			return err
		}
		lat = append(lat, d)
	}
	time.Sleep(3 * time.Second) // the last status writes
	after, err := apiRequests(client, e.url("/metrics"))
	if err != nil {
		return err
	}
	elapsed := time.Since(began)
	fmt.Printf("API-visible pod start over %d pods (create -> Running in a watch): p50 %s  p95 %s  max %s\n",
		*pods, ms(lat.pct(0.5)), ms(lat.pct(0.95)), ms(lat.pct(1)))
	// Lease renewals are the only PUTs while nothing else changes: the rest
	// is what the pod starts cost.
	startCost := 0.0
	for _, method := range []string{"GET", "PATCH", "PUT", "POST", "DELETE"} {
		n := after[method] - before[method]
		if method != "PUT" {
			startCost += n
		}
		fmt.Printf("  requests by knode during the run, %-6s %4.0f\n", method, n)
	}
	fmt.Printf("  %.2f requests per pod start (the PUTs, lease renewals, left out) over %.1f s\n", startCost/float64(*pods), elapsed.Seconds())
	pid := e.knode.Process.Pid
	fmt.Printf("knode RSS with %d API pods running and %d Services watched (%d in the pods' namespace): %.1f MiB (%s)\n",
		*pods, *services, min(*linked, *services), float64(rssKiB(pid))/1024, rssParts(pid))
	if heap, err := goMemory(client, e.url("/metrics")); err == nil {
		fmt.Printf("  Go runtime (knode's go_memstats): %s\n", heap)
	}
	for i := 0; i < *pods; i++ {
		_ = core.Pods("default").Delete(ctx, fmt.Sprintf("p%d", i), metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	}

	return benchIdleAgents(ctx, cp, core, e, *agents, *window)
}

// createServices makes n ClusterIP Services with two ports each, linked of
// them in the pods' namespace (default), the rest in another.
func createServices(ctx context.Context, core coreclient.CoreV1Interface, n, linked int) error {
	if n > 0 {
		if _, err := core.Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	for i := 0; i < n; i++ {
		ns := "default"
		if i >= linked {
			ns = "other"
		}
		svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%03d", i), Labels: map[string]string{"app": "bench"}},
			Spec: v1.ServiceSpec{Selector: map[string]string{"app": fmt.Sprintf("svc-%03d", i)},
				Ports: []v1.ServicePort{{Name: "http", Port: 80}, {Name: "metrics", Port: 9090}}}}
		if _, err := core.Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create service %d: %w", i, err)
		}
	}
	return nil
}

// benchIdleAgents registers n agents on e's containerd, puts a pod on a few,
// then counts what the API server is asked while they idle.
func benchIdleAgents(ctx context.Context, cp *controlplane.ControlPlane, core coreclient.CoreV1Interface, e *env, n int, window time.Duration) error {
	endpoint := "unix://" + filepath.Join(e.dir, "c", "containerd.sock")
	var running []*agent
	defer func() {
		for _, a := range running {
			a.stop()
		}
	}()
	var names []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("idle-%02d", i)
		kc, err := cp.Kubeconfig(name, "system:node:"+name, "system:nodes")
		if err != nil {
			return err
		}
		port, err := controlplane.FreePort()
		if err != nil {
			return err
		}
		a, err := startAgent(filepath.Join(e.dir, name), endpoint, name, port, "--kubeconfig", kc)
		if err != nil {
			return err
		}
		running = append(running, a)
		names = append(names, name)
	}
	if err := waitNodesReady(ctx, core, names, 3*time.Minute); err != nil {
		return err
	}
	withPod := min(5, n)
	for i := 0; i < withPod; i++ {
		if _, err := startAPIPod(ctx, core, "on-"+names[i], names[i]); err != nil {
			return err
		}
	}
	time.Sleep(15 * time.Second) // past registration and the first status rounds
	var err error
	rss := 0
	for _, a := range running {
		rss += rssKiB(a.cmd.Process.Pid)
	}
	clients := make([]*http.Client, len(running))
	for i, a := range running {
		if clients[i], err = adminClient(a.root, 1); err != nil {
			return err
		}
	}
	agentTotal := func() (float64, error) {
		sum := 0.0
		for i, a := range running {
			counts, err := apiRequests(clients[i], fmt.Sprintf("https://127.0.0.1:%d/metrics", a.port))
			if err != nil {
				return 0, err
			}
			for _, v := range counts {
				sum += v
			}
		}
		return sum, nil
	}
	serverTotal := func() (float64, error) {
		raw, err := core.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			return 0, err
		}
		return sumMetric(string(raw), "apiserver_request_total"), nil
	}
	a0, err := agentTotal()
	if err != nil {
		return err
	}
	s0, err := serverTotal()
	if err != nil {
		return err
	}
	time.Sleep(window)
	a1, err := agentTotal()
	if err != nil {
		return err
	}
	s1, err := serverTotal()
	if err != nil {
		return err
	}
	secs := window.Seconds()
	fmt.Printf("%d idle agents (%d with a pod), one containerd, over %s:\n", n, withPod, window)
	fmt.Printf("  requests sent by the agents: %.0f = %.2f req/s in all, %.3f req/s per node\n", a1-a0, (a1-a0)/secs, (a1-a0)/secs/float64(n))
	fmt.Printf("  apiserver_request_total (every client: the agents, the API server's own loops, these two reads): %.2f req/s\n", (s1-s0)/secs)
	fmt.Printf("  agents' RSS: %d MiB in all, %.1f MiB each\n", rss/1024, float64(rss)/1024/float64(n))
	return nil
}

// startAPIPod creates a pod bound to node and returns the time until a
// watch shows it Running.
func startAPIPod(ctx context.Context, core coreclient.CoreV1Interface, name, node string) (time.Duration, error) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PodSpec{NodeName: node, AutomountServiceAccountToken: new(bool), TerminationGracePeriodSeconds: new(int64),
			Containers: []v1.Container{{Name: "main", Image: "knode.local/busybox:1.36", Command: []string{"sleep", "3600"}}}}}
	return controlplane.StartPodWatched(ctx, core.Pods("default"), pod, 2*time.Minute)
}

func waitNodesReady(ctx context.Context, core coreclient.CoreV1Interface, names []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, name := range names {
		for {
			node, err := core.Nodes().Get(ctx, name, metav1.GetOptions{})
			if err == nil && nodeIsReady(node) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %s not Ready: %v", name, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func nodeIsReady(node *v1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// apiRequests reads knode's rest_client_requests_total, summed by method.
func apiRequests(c *http.Client, url string) (map[string]float64, error) {
	req, err := metricsRequest(url)
	if err != nil {
		return nil, err
	}
	return controlplane.RequestsByMethod(c, req)
}

// metricsRequest asks for /metrics uncompressed. Go's transport would ask
// for gzip, and knode's metrics handler would then build a gzip compressor
// (about 0.8 MiB of heap, kept in a pool over the next garbage
// collections) just before the bench reads knode's RSS: the measurement
// would weigh its own reading.
func metricsRequest(url string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	return req, nil
}

// goMemory reads where knode's anonymous memory goes from its Go collector:
// the heap's live objects and in-use spans, goroutine stacks, and the
// runtime's own structures.
func goMemory(c *http.Client, url string) (string, error) {
	req, err := metricsRequest(url)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	text := string(raw)
	mib := func(name string) float64 { return sumMetric(text, name) / (1 << 20) }
	return fmt.Sprintf("heap alloc %.1f MiB, heap in use %.1f MiB, next GC at %.1f MiB, stacks %.1f MiB, runtime metadata %.1f MiB",
		mib("go_memstats_heap_alloc_bytes"), mib("go_memstats_heap_inuse_bytes"), mib("go_memstats_next_gc_bytes"),
		mib("go_memstats_stack_inuse_bytes"),
		mib("go_memstats_gc_sys_bytes")+mib("go_memstats_mspan_sys_bytes")+mib("go_memstats_mcache_sys_bytes")+mib("go_memstats_other_sys_bytes")+mib("go_memstats_buck_hash_sys_bytes")), nil
}

// sumMetric adds every sample of a counter in Prometheus text.
func sumMetric(text, name string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}
