// Command bench measures knode on this machine: pod start latency against
// the bare CRI calls, knode's memory, the HTTPS API's throughput, and the
// checkpoint API's own overhead. Run it by hand as root after `make setup
// build`; results go to docs/benchmarks.md. It asserts nothing.
//
//	go run ./bench podstart|memory|api|checkpoint|devices|restore|cluster|conformance
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/cgroups"
	"knode.io/knode/internal/containerd"
	"knode.io/knode/internal/cri"
	"knode.io/knode/test/fakecri"
	"knode.io/knode/test/images"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is one benchmark node: a runtime (real or fake) and a knode.
type env struct {
	dir, manifests, root string
	port                 int
	sup                  *containerd.Supervisor
	fake                 *fakecri.Server
	rt                   *cri.Runtime
	knode                *exec.Cmd
}

func newEnv(fake bool, criuDir string) (*env, error) {
	return newEnvWith(fake, criuDir, "")
}

// newEnvWith runs the containerd build in containerdDir (with restore
// through CRI enabled) when set.
func newEnvWith(fake bool, criuDir, containerdDir string) (*env, error) {
	dir, err := os.MkdirTemp("/tmp", "knb")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, manifests: filepath.Join(dir, "m"), root: filepath.Join(dir, "root")}
	if err := os.MkdirAll(e.manifests, 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	endpoint := ""
	if fake {
		if e.fake, err = fakecri.Start(filepath.Join(dir, "fake.sock")); err != nil {
			return nil, err
		}
		endpoint = "unix://" + e.fake.Socket
	} else {
		var extra []string
		if criuDir != "" {
			extra = []string{criuDir}
		}
		opts := containerd.Options{
			Layout:    containerd.Layout{Dir: filepath.Join(dir, "c")},
			Settings:  containerd.Settings{SandboxImage: images.Pause, PodCIDR: fmt.Sprintf("10.%d.0.0/16", 90+len(dir)%9), CNIBinDirs: []string{"/usr/lib/cni"}},
			ExtraPath: extra,
			Log:       quiet,
		}
		if containerdDir != "" {
			opts.Binary = filepath.Join(containerdDir, "containerd")
			opts.ExtraPath = append(opts.ExtraPath, containerdDir)
			opts.Settings.EnableRestore = true
		}
		e.sup, err = containerd.Start(ctx, opts)
		if err != nil {
			return nil, err
		}
		if _, err := containerd.ImportArchives(ctx, e.sup.Binary(), filepath.Join(dir, "c", "containerd.sock"), "_output/images"); err != nil {
			return nil, err
		}
		endpoint = e.sup.Endpoint()
	}
	if e.rt, err = cri.Connect(ctx, quiet, endpoint, 2*time.Minute); err != nil {
		return nil, err
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	e.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return e, nil
}

// runningEnv is a node on real containerd with knode started.
func runningEnv(extra ...string) (*env, error) {
	e, err := newEnv(false, "")
	if err != nil {
		return nil, err
	}
	if err := e.startKnode(extra...); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) startKnode(extra ...string) error {
	endpoint := "unix://" + filepath.Join(e.dir, "c", "containerd.sock")
	if e.fake != nil {
		endpoint = "unix://" + e.fake.Socket
	}
	a, err := startAgent(e.dir, endpoint, "bench", e.port, extra...)
	if err != nil {
		return err
	}
	e.knode = a.cmd
	return nil
}

// benchCgroupRoot is the --cgroup-root of the knode whose files are in dir.
func benchCgroupRoot(dir string) string { return "/knode-bench-" + filepath.Base(dir) }

// agent is one knode process with its files under dir.
type agent struct {
	dir, root string
	port      int
	cmd       *exec.Cmd
}

// startAgent runs knode as node name on the runtime at endpoint, serving on
// port, and waits until it serves.
func startAgent(dir, endpoint, name string, port int, extra ...string) (*agent, error) {
	a := &agent{dir: dir, root: filepath.Join(dir, "root"), port: port}
	manifests := filepath.Join(dir, "m")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		return nil, err
	}
	// A cgroup root of its own: knode destroys the pod cgroups under its
	// root that it does not know, and other nodes may run on this machine.
	args := append([]string{"run", "--root-dir", a.root, "--pod-manifest-path", manifests, "--cgroup-root", benchCgroupRoot(dir),
		"--pod-logs-dir", filepath.Join(dir, "logs"), "--hostname-override", name,
		"--container-runtime-endpoint", endpoint, "--address", "127.0.0.1", "--port", strconv.Itoa(port)}, extra...)
	log, err := os.Create(filepath.Join(dir, "knode.log"))
	if err != nil {
		return nil, err
	}
	a.cmd = exec.Command("_output/bin/knode", args...)
	a.cmd.Stdout, a.cmd.Stderr = log, log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(a.root, "pki", "admin.crt")); err == nil {
			if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
				c.Close()
				return a, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("knode did not start; see %s", filepath.Join(dir, "knode.log"))
}

func (a *agent) stop() {
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
}

// close removes every pod and stops everything.
func (e *env) close() {
	if e.knode != nil && e.knode.Process != nil {
		_ = e.knode.Process.Kill()
		_ = e.knode.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if e.rt != nil {
		sbs, _ := e.rt.ListPodSandbox(ctx, nil)
		for _, sb := range sbs {
			_ = e.rt.StopPodSandbox(ctx, sb.Id)
			_ = e.rt.RemovePodSandbox(ctx, sb.Id)
		}
	}
	if e.sup != nil {
		e.sup.Stop(20 * time.Second)
		_ = exec.Command("ip", "link", "del", containerd.BridgeName(containerd.Layout{Dir: filepath.Join(e.dir, "c")})).Run()
	}
	if e.fake != nil {
		e.fake.Stop()
	}
	if fs, err := cgroups.New(); err == nil {
		_ = fs.Remove(benchCgroupRoot(e.dir))
	}
	_ = exec.Command("sh", "-c", "grep -o ' "+e.dir+"[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l").Run()
	_ = os.RemoveAll(e.dir)
}

// httpClient presents knode's admin certificate; keep-alive, many connections.
func (e *env) httpClient(conns int) (*http.Client, error) { return adminClient(e.root, conns) }

// adminClient presents the admin certificate of the knode whose root dir
// is root, and trusts its serving certificate.
func adminClient(root string, conns int) (*http.Client, error) {
	pki := filepath.Join(root, "pki")
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "admin.crt"), filepath.Join(pki, "admin.key"))
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(filepath.Join(pki, "kubelet.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
		MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
	}}, nil
}

func (e *env) url(path string) string { return "https://127.0.0.1:" + strconv.Itoa(e.port) + path }

func (e *env) writeManifest(name, content string) error {
	tmp := filepath.Join(e.manifests, "."+name)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(e.manifests, name))
}

// runningPods is the set of pod names with a running container.
func (e *env) runningPods(ctx context.Context) (map[string]bool, error) {
	cs, err := e.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, c := range cs {
		out[c.Labels["io.kubernetes.pod.name"]] = true
	}
	return out, nil
}

// rssKiB is a process's resident set size.
func rssKiB(pid int) int { return statusKiB(pid, "VmRSS:") }

// rssParts says how much of the RSS is anonymous memory (heap, stacks) and
// how much file pages (mostly the binary).
func rssParts(pid int) string {
	return fmt.Sprintf("anon %d KiB, file %d KiB", statusKiB(pid, "RssAnon:"), statusKiB(pid, "RssFile:"))
}

// statusKiB reads one kB field of /proc/<pid>/status.
func statusKiB(pid int, field string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return -1
}

type durations []time.Duration

func (d durations) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append(durations(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := int(float64(len(s)-1) * p)
	return s[idx]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go run ./bench podstart|memory|api|checkpoint|devices|restore|cluster|conformance")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "podstart":
		err = benchPodStart()
	case "memory":
		err = benchMemory()
	case "api":
		err = benchAPI()
	case "checkpoint":
		err = benchCheckpoint()
	case "devices":
		err = benchDevices()
	case "restore":
		err = benchRestore()
	case "cluster":
		err = benchCluster(os.Args[2:])
	case "conformance":
		err = benchConformance(os.Args[2:])
	default:
		err = fmt.Errorf("unknown benchmark %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
