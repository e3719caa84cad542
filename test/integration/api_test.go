package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	v1 "k8s.io/api/core/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"knode.io/knode/internal/client"
)

// metricValue scrapes /metrics through the text parser and returns the
// value of the series with the given labels.
func metricValue(t *testing.T, c *client.Client, name string, labels map[string]string) float64 {
	t.Helper()
	return metricAt(t, c, "/metrics", name, labels)
}

// metricAt is metricValue for the metrics served at path.
func metricAt(t *testing.T, c *client.Client, path, name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := c.Do(context.Background(), http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	fam := families[name]
	if fam == nil {
		return 0
	}
next:
	for _, m := range fam.Metric {
		for k, v := range labels {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

func TestHTTPSAPI(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("talker.yaml", podManifest("talker", "default", "Always",
		`i=0; while true; do echo "line $i"; i=$((i+1)); sleep 0.3; done`))
	n.startKnode()
	c := n.api()

	// Authentication: no certificate and a foreign certificate get 401.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := insecure.Get(n.url() + "/pods")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no certificate: %d, want 401", resp.StatusCode)
	}

	startedBefore := metricValue(t, c, "kubelet_started_containers_total", map[string]string{"container_type": "container"})

	// /pods shows the static pod Running with its container running.
	var pod v1.Pod
	n.eventually(60*time.Second, "talker Running in /pods", func() bool {
		list, err := c.Pods(context.Background())
		if err != nil {
			return false
		}
		for _, p := range list.Items {
			if p.Name == n.podName("talker") && p.Status.Phase == v1.PodRunning &&
				len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil {
				pod = p
				return true
			}
		}
		return false
	})
	if pod.Status.PodIP == "" || pod.Status.StartTime == nil || !strings.HasPrefix(pod.Status.ContainerStatuses[0].ContainerID, "containerd://") {
		t.Fatalf("incomplete status: %+v", pod.Status)
	}

	// /containerLogs returns what the container printed.
	var out strings.Builder
	n.eventually(20*time.Second, "log lines", func() bool {
		out.Reset()
		_ = c.Logs(context.Background(), "default", n.podName("talker"), "main", url.Values{"tailLines": {"2"}}, &out)
		return strings.Count(out.String(), "line ") == 2
	})

	// follow streams new lines, and ends when the client goes away.
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := c.Logs(ctx, "default", n.podName("talker"), "main", url.Values{"follow": {"true"}, "tailLines": {"0"}}, pw)
		pw.Close()
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	lines := 0
	for lines < 3 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "line ") {
			lines++
		}
	}
	if lines < 3 {
		t.Fatalf("follow streamed %d lines", lines)
	}
	inflight := func() float64 {
		return metricValue(t, c, "kubelet_http_inflight_requests", map[string]string{"path": "containerLogs", "long_running": "true"})
	}
	if v := inflight(); v != 1 {
		t.Fatalf("in-flight follow streams = %v, want 1", v)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	<-done
	n.eventually(10*time.Second, "the follow stream to end on the server", func() bool { return inflight() == 0 })

	// Metrics: the counters moved when the pod started.
	if got := metricValue(t, c, "kubelet_started_containers_total", map[string]string{"container_type": "container"}); got < 1 || got < startedBefore {
		t.Fatalf("kubelet_started_containers_total = %v", got)
	}
	if got := metricValue(t, c, "kubelet_running_pods", nil); got != 1 {
		t.Fatalf("kubelet_running_pods = %v, want 1", got)
	}
	if got := metricValue(t, c, "kubelet_runtime_operations_total", map[string]string{"operation_type": "create_container"}); got < 1 {
		t.Fatalf("create_container operations = %v", got)
	}
	if got := metricValue(t, c, "kubelet_http_requests_total", map[string]string{"path": "pods", "server_type": "readwrite"}); got < 1 {
		t.Fatalf("http requests for /pods = %v", got)
	}

	// /healthz is ok with the runtime up.
	resp, err = c.Do(context.Background(), http.MethodGet, "/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("healthz: %q", body)
	}

	// Bad paths: 400/404, and nothing is created on disk.
	before := dirListing(t, n.dir)
	for path, want := range map[string]string{
		"/containerLogs/default/..%2F..%2F..%2Fetc/main":          "400",
		"/containerLogs/a%2Fb/x/y":                                "400",
		"/containerLogs/default/nope/main":                        "404",
		"/containerLogs/default/" + n.podName("talker") + "/nope": "404",
		"/no/such/path": "404",
	} {
		_, err := c.Do(context.Background(), http.MethodGet, path, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %s", path, err, want)
		}
	}
	if after := dirListing(t, n.dir); after != before {
		t.Fatalf("bad requests changed the files under the node's directory")
	}
}

// dirListing lists the files under dir, skipping the ones that change on
// their own (logs, runtime state).
func dirListing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		if strings.HasPrefix(rel, "ctrd") || strings.HasSuffix(rel, ".log") {
			return nil
		}
		b.WriteString(rel + "\n")
		return nil
	})
	return b.String()
}

func TestHealthzReportsRuntimeDown(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.startKnode()
	c := n.api()
	n.runtime.Stop(20 * time.Second)
	n.eventually(30*time.Second, "healthz to fail on the runtime", func() bool {
		_, err := c.Do(context.Background(), http.MethodGet, "/healthz", nil)
		return err != nil && strings.Contains(err.Error(), "500") && strings.Contains(err.Error(), "[-]runtime failed")
	})
	n.startRuntime()
	n.eventually(30*time.Second, "healthz ok again", func() bool {
		_, err := c.Do(context.Background(), http.MethodGet, "/healthz", nil)
		return err == nil
	})
}

func TestReadOnlyPortDockershimMetricAndFlood(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("docker-user.yaml", `apiVersion: v1
kind: Pod
metadata: {name: docker-user}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: run, hostPath: {path: /var/run}}]
  containers:
  - name: main
    image: `+busybox+`
    command: ["sleep", "3600"]
    volumeMounts: [{name: run, mountPath: /host-run}]
`)
	ro := freePort(t)
	n.startKnode("--read-only-port", strconv.Itoa(ro))
	n.waitRunning("default", "docker-user", "main")
	c := n.api()
	if got := metricValue(t, c, "knode_dockershim_dependent_pods", nil); got != 1 {
		t.Fatalf("knode_dockershim_dependent_pods = %v, want 1", got)
	}
	if !strings.Contains(n.knodeLog(), "pod mounts the Docker socket") {
		t.Fatal("no warning about the pod mounting the Docker socket")
	}

	// The read-only port: plain HTTP, no authentication, read-only endpoints only.
	base := "http://127.0.0.1:" + strconv.Itoa(ro)
	for path, want := range map[string]int{"/healthz": 200, "/pods": 200, "/metrics": 200,
		"/containerLogs/default/" + n.podName("docker-user") + "/main": 404, "/configz": 404, "/runningpods/": 404} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("read-only %s: %d, want %d", path, resp.StatusCode, want)
		}
	}

	// A flood of bad requests leaves the server serving.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxConnsPerHost: 16}}
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				for _, p := range []string{"/containerLogs/..%2F..%2Fetc/x/y", "/%00", "/pods?" + strings.Repeat("x", 5000), "/checkpoint/a/b/c"} {
					if resp, err := insecure.Get(n.url() + p); err == nil {
						resp.Body.Close()
					}
				}
			}
		}(w)
	}
	wg.Wait()
	resp, err := c.Do(context.Background(), http.MethodGet, "/healthz", nil)
	if err != nil {
		t.Fatalf("after the flood: %v", err)
	}
	resp.Body.Close()
}

// GET /metrics/resource: what metrics-server reads for `kubectl top`.
func TestResourceMetrics(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.writeManifest("hog.yaml", podManifest("hog", "default", "Always", `exec memhog 24`))
	n.startKnode()
	n.waitRunning("default", "hog", "main")
	c := n.api()
	labels := map[string]string{"container": "main", "pod": n.podName("hog"), "namespace": "default"}
	n.eventually(30*time.Second, "the container's working set above the 24 MiB it holds", func() bool {
		return metricAt(t, c, "/metrics/resource", "container_memory_working_set_bytes", labels) >= 24<<20
	})
	if v := metricAt(t, c, "/metrics/resource", "container_cpu_usage_seconds_total", labels); v <= 0 {
		t.Errorf("container cpu %v", v)
	}
	if v := metricAt(t, c, "/metrics/resource", "pod_memory_working_set_bytes", map[string]string{"pod": n.podName("hog")}); v < 24<<20 {
		t.Errorf("pod working set %v", v)
	}
	for _, name := range []string{"node_cpu_usage_seconds_total", "node_memory_working_set_bytes", "container_start_time_seconds"} {
		if v := metricAt(t, c, "/metrics/resource", name, nil); v <= 0 {
			t.Errorf("%s = %v", name, v)
		}
	}
	// scrape_error is there, and 0 (metricAt would read an absent series as 0).
	raw, err := c.Do(context.Background(), http.MethodGet, "/metrics/resource", nil)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(raw.Body)
	raw.Body.Close()
	if !regexp.MustCompile(`(?m)^scrape_error 0$`).Match(text) {
		t.Errorf("no scrape_error 0 in /metrics/resource")
	}

	// GET /stats/summary, the kubelet's v1alpha1 summary.
	resp, err := c.Do(context.Background(), http.MethodGet, "/stats/summary", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var summary statsapi.Summary
	if err := json.NewDecoder(resp.Body).Decode(&summary); err != nil {
		t.Fatal(err)
	}
	if summary.Node.NodeName != n.name || summary.Node.Memory == nil || summary.Node.Fs == nil || len(summary.Pods) != 1 {
		t.Fatalf("summary: %+v", summary)
	}
	pod := summary.Pods[0]
	if pod.PodRef.Name != n.podName("hog") || len(pod.Containers) != 1 || pod.Memory == nil || *pod.Memory.WorkingSetBytes < 24<<20 {
		t.Fatalf("summary pod: %+v", pod)
	}
}
