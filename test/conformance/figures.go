package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"knode.io/knode/test/controlplane"
	"knode.io/knode/test/images"
)

// figures are issue 12's numbers for one agent, measured in the harness's
// cluster (`go run ./bench conformance` puts both agents side by side).
type figures struct {
	Agent string `json:"agent"`
	// SuiteWall is the wall time of the suite's run (all phases).
	SuiteWall string `json:"suiteWall"`
	// RSSPeakKiB and RSSMedianKiB: the agent's resident memory sampled each
	// second while the suite's pods ran.
	RSSPeakKiB   int `json:"rssPeakKiB"`
	RSSMedianKiB int `json:"rssMedianKiB"`
	// PodStartP50/P95: pods created through the API (bound by the
	// scheduler) until a watch shows them Running, one after another.
	Pods        int    `json:"pods"`
	PodStartP50 string `json:"podStartP50"`
	PodStartP95 string `json:"podStartP95"`
	// RequestsPerPodStart: the agent's own API requests during the starts
	// (its rest_client_requests_total), less what it sends idle over as
	// long (measured just before), per pod.
	RequestsPerPodStart float64            `json:"requestsPerPodStart"`
	RequestsByMethod    map[string]float64 `json:"requestsByMethod"`
	IdleRequestsPerSec  float64            `json:"idleRequestsPerSec"`
	// RSSWithPodsKiB is the agent's RSS with the pod-start pods running.
	RSSWithPodsKiB int `json:"rssWithPodsKiB"`
}

// rssSampler samples a process's VmRSS once a second until stopped.
type rssSampler struct {
	mu      sync.Mutex
	samples []int
	stop    chan struct{}
	done    chan struct{}
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if kib := vmRSS(pid); kib > 0 {
				s.mu.Lock()
				s.samples = append(s.samples, kib)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// finish stops sampling and returns the peak and the median.
func (s *rssSampler) finish() (peak, median int) {
	close(s.stop)
	<-s.done
	if len(s.samples) == 0 {
		return 0, 0
	}
	sorted := append([]int(nil), s.samples...)
	sort.Ints(sorted)
	return sorted[len(sorted)-1], sorted[len(sorted)/2]
}

// vmRSS reads /proc/<pid>/status's VmRSS in KiB (0 when gone).
func vmRSS(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// measurePodStart starts n pods one after another in the default namespace
// (the e2e busybox image, `sleep 3600`, the default service account's token
// mounted as in any cluster) and counts the agent's API requests meanwhile.
func (c *cluster) measurePodStart(ctx context.Context, n int, f *figures) error {
	metrics, err := c.agentMetricsClient()
	if err != nil {
		return err
	}
	// The idle rate first: what the agent sends with nothing to do
	// (leases, node status) is not the pods' cost.
	const idle = 30 * time.Second
	r0, err := metrics()
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(idle):
	}
	r1, err := metrics()
	if err != nil {
		return err
	}
	f.IdleRequestsPerSec = (total(r1) - total(r0)) / idle.Seconds()

	pods := c.client.CoreV1().Pods("default")
	var lat []time.Duration
	began := time.Now()
	for i := 0; i < n; i++ {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("figures-%d", i)}, Spec: v1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers:                    []v1.Container{{Name: "main", Image: images.E2EBusybox[0], Command: []string{"sleep", "3600"}}},
		}}
		d, err := controlplane.StartPodWatched(ctx, pods, pod, 5*time.Minute)
		if err != nil {
			return err
		}
		lat = append(lat, d)
	}
	elapsed := time.Since(began)
	r2, err := metrics()
	if err != nil {
		return err
	}
	f.RSSWithPodsKiB = vmRSS(c.agentProc.cmd.Process.Pid)
	f.RequestsByMethod = map[string]float64{}
	for m, v := range r2 {
		f.RequestsByMethod[m] = v - r1[m]
	}
	f.RequestsPerPodStart = (total(r2) - total(r1) - f.IdleRequestsPerSec*elapsed.Seconds()) / float64(n)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	f.Pods = n
	f.PodStartP50 = lat[(n-1)/2].Round(time.Millisecond).String()
	f.PodStartP95 = lat[int(float64(n-1)*0.95)].Round(time.Millisecond).String()
	for i := 0; i < n; i++ {
		_ = pods.Delete(ctx, fmt.Sprintf("figures-%d", i), metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	}
	return nil
}

func total(m map[string]float64) float64 {
	sum := 0.0
	for _, v := range m {
		sum += v
	}
	return sum
}

// agentMetricsClient returns a reader of the agent's API request counters
// (rest_client_requests_total by method, from its /metrics), asked as the
// cluster's admin (both agents authorize it through the API server).
func (c *cluster) agentMetricsClient() (func() (map[string]float64, error), error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.admin)
	if err != nil {
		return nil, err
	}
	// A plain client with the admin's certificate: client-go's transport
	// for certificate files, reused across clusters by its cache, broke
	// these connections ("use of closed network connection").
	cert, err := tls.LoadX509KeyPair(cfg.TLSClientConfig.CertFile, cfg.TLSClientConfig.KeyFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(cfg.TLSClientConfig.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no CA certificate in %s", cfg.TLSClientConfig.CAFile)
	}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	url := "https://" + net.JoinHostPort(c.nodeIP.String(), strconv.Itoa(c.agentPort)) + "/metrics"
	return func() (map[string]float64, error) {
		// A new connection each time: the reads are half a minute and
		// more apart, longer than an idle connection may live.
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Close = true
		return controlplane.RequestsByMethod(hc, req)
	}, nil
}

func writeFigures(outDir string, f figures) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(outDir, "figures.json"), data, 0o644)
}
