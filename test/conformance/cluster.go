package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"knode.io/knode/internal/containerd"
	"knode.io/knode/internal/cri"
	"knode.io/knode/test/controlplane"
	"knode.io/knode/test/images"
)

// cluster is one run's cluster: control plane, controllers, one node.
type cluster struct {
	log            *slog.Logger
	tools          tools
	repo, dir      string
	nodeIP         net.IP
	agent          string
	nodeName       string
	cp             *controlplane.ControlPlane
	admin          string
	client         kubernetes.Interface
	controllers    []*process
	agentProc      *process
	agentPort      int
	runtime        *containerd.Supervisor
	cgroupRoot     string
	cgroupDirs     []string
	savedSysctls   map[string]string
	stoppedCleanly bool
}

// process is a child the harness started; it is stopped by its pid.
type process struct {
	name     string
	path     string
	args     []string
	cmd      *exec.Cmd
	done     chan struct{}
	restarts int
}

func (c *cluster) startProcess(name string, args ...string) (*process, error) {
	f, err := os.OpenFile(filepath.Join(c.dir, filepath.Base(name)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group; killed with the harness.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(name), err)
	}
	p := &process{name: filepath.Base(name), path: name, args: args, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM and waits, then kills.
func (p *process) stop(grace time.Duration) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (c *cluster) start(ctx context.Context) error {
	cpDir := filepath.Join(c.dir, "cp")
	if err := os.MkdirAll(cpDir, 0o700); err != nil {
		return err
	}
	var err error
	if c.cp, err = controlplane.Start(c.tools.controlPlane, cpDir); err != nil {
		return err
	}
	if c.admin, err = c.cp.Kubeconfig("admin", "admin", "system:masters"); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.admin)
	if err != nil {
		return err
	}
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	caKey, err := c.cp.PKI.WriteCAKey()
	if err != nil {
		return err
	}
	kcm, err := c.cp.Kubeconfig("kube-controller-manager", "system:kube-controller-manager")
	if err != nil {
		return err
	}
	sched, err := c.cp.Kubeconfig("kube-scheduler", "system:kube-scheduler")
	if err != nil {
		return err
	}
	// Without the controller manager no namespace gets its kube-root-ca.crt
	// ConfigMap or default service account, and every pod with a
	// service-account token volume waits forever, whatever the node.
	p, err := c.startProcess(c.tools.bin("kube-controller-manager"), "--kubeconfig", kcm,
		// No serving port (nothing here asks it): no port to race
		// other runs for.
		"--secure-port", "0",
		"--use-service-account-credentials", "--root-ca-file", c.cp.PKI.CAFile,
		"--service-account-private-key-file", filepath.Join(cpDir, "sa.key"),
		"--cluster-signing-cert-file", c.cp.PKI.CAFile, "--cluster-signing-key-file", caKey,
		"--leader-elect=false")
	if err != nil {
		return err
	}
	c.controllers = append(c.controllers, p)
	if p, err = c.startProcess(c.tools.bin("kube-scheduler"), "--kubeconfig", sched,
		"--secure-port", "0", "--leader-elect=false"); err != nil {
		return err
	}
	c.controllers = append(c.controllers, p)

	if err := c.startRuntime(ctx); err != nil {
		return err
	}
	if err := c.makeCgroupRoot(); err != nil {
		return err
	}
	if err := c.startAgent(); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

// podCIDR is the agent's bridge network: the first 10.198.x.0/24 no route
// of this machine uses yet, so that runs of the harness can go on at the
// same time (and outside the integration tests' 10.200.0.0/13).
func (c *cluster) podCIDR() (string, error) {
	routes, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return "", err
	}
	for i := 0; i < 250; i++ {
		// /proc/net/route writes destinations as little-endian hex.
		dest := fmt.Sprintf("00%02XC60A", i)
		if !strings.Contains(string(routes), "\t"+dest+"\t") {
			return fmt.Sprintf("10.198.%d.0/24", i), nil
		}
	}
	return "", fmt.Errorf("no free 10.198.x.0/24 for the pod network")
}

func (c *cluster) layout() containerd.Layout {
	return containerd.Layout{Dir: filepath.Join(c.dir, "ctrd")}
}

func (c *cluster) startRuntime(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	extra := []string{c.tools.containerd}
	if c.tools.criuDir != "" {
		extra = append([]string{c.tools.criuDir}, extra...)
	}
	cidr, err := c.podCIDR()
	if err != nil {
		return err
	}
	sup, err := containerd.Start(ctx, containerd.Options{
		Layout: c.layout(),
		Settings: containerd.Settings{
			SandboxImage: images.E2EPause[0],
			PodCIDR:      cidr,
			CNIBinDirs:   []string{"/usr/lib/cni"},
		},
		Binary:    filepath.Join(c.tools.containerd, "containerd"),
		ExtraPath: extra,
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	c.runtime = sup
	if _, err := containerd.ImportArchives(ctx, sup.Binary(), c.layout().Socket(), c.tools.images); err != nil {
		return err
	}
	return nil
}

// makeCgroupRoot creates the agent's own cgroup root in every cgroup v1
// hierarchy (or the v2 tree), so its pods never mix with another agent's
// on this shared machine; the kubelet refuses a cgroup root that does not
// exist.
func (c *cluster) makeCgroupRoot() error {
	// Unique per run: runs of the harness may overlap.
	c.cgroupRoot = "/conformance-" + filepath.Base(c.dir)
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		dir := filepath.Join("/sys/fs/cgroup", c.cgroupRoot)
		c.cgroupDirs = append(c.cgroupDirs, dir)
		return os.MkdirAll(dir, 0o755)
	}
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return err
	}
	for _, e := range entries {
		hier := filepath.Join("/sys/fs/cgroup", e.Name())
		if fi, err := os.Lstat(hier); err != nil || !fi.IsDir() {
			continue // cpu,cpuacct links
		}
		dir := filepath.Join(hier, c.cgroupRoot)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("cgroup root %s: %w", dir, err)
		}
		c.cgroupDirs = append(c.cgroupDirs, dir)
		if e.Name() == "cpuset" {
			// A v1 cpuset cgroup takes no task until it has cpus and mems.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(hier, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
			}
		}
	}
	return nil
}

func (c *cluster) startAgent() error {
	kc, err := c.cp.Kubeconfig(c.nodeName, "system:node:"+c.nodeName, "system:nodes")
	if err != nil {
		return err
	}
	crt, key, err := c.cp.PKI.Issue(c.nodeName+"-serving", "system:node:"+c.nodeName, []net.IP{c.nodeIP, net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	port, err := controlplane.FreePort()
	if err != nil {
		return err
	}
	c.agentPort = port
	root := filepath.Join(c.dir, "root")
	podLogs := filepath.Join(c.dir, "pods")
	for _, d := range []string{root, podLogs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	switch c.agent {
	case "knode":
		c.agentProc, err = c.startProcess(c.tools.knode, "run",
			"--kubeconfig", kc, "--hostname-override", c.nodeName, "--node-ip", c.nodeIP.String(),
			"--root-dir", root, "--pod-logs-dir", podLogs, "--container-log-symlink-dir", filepath.Join(c.dir, "containers"),
			"--container-runtime-endpoint", c.runtime.Endpoint(), "--cgroup-root", c.cgroupRoot,
			"--address", c.nodeIP.String(), "--port", strconv.Itoa(port),
			"--authentication-token-webhook", "--authorization-mode", "Webhook",
			"--client-ca-file", c.cp.PKI.CAFile, "--tls-cert-file", crt, "--tls-private-key-file", key)
		return err
	case "kubelet":
		if err := c.saveSysctls(); err != nil {
			return err
		}
		config := filepath.Join(c.dir, "kubelet.yaml")
		// The kubelet's configuration equivalent to knode's flags above, and
		// what this machine needs: cgroup v1, swap, no iptables chains
		// (the harness touches no firewall), containerd's cgroupfs driver.
		content := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %q
port: %d
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
tlsCertFile: %q
tlsPrivateKeyFile: %q
cgroupDriver: cgroupfs
cgroupRoot: %q
failSwapOn: false
failCgroupV1: false
makeIPTablesUtilChains: false
containerRuntimeEndpoint: %q
podLogsDir: %q
`, c.nodeIP.String(), port, c.cp.PKI.CAFile, crt, key, c.cgroupRoot, c.runtime.Endpoint(), podLogs)
		if err := os.WriteFile(config, []byte(content), 0o600); err != nil {
			return err
		}
		c.agentProc, err = c.startProcess(c.tools.bin("kubelet"), "--config", config, "--kubeconfig", kc,
			"--root-dir", root, "--hostname-override", c.nodeName, "--node-ip", c.nodeIP.String(), "--v", "2")
		return err
	}
	return fmt.Errorf("unknown agent %q", c.agent)
}

// kubeletSysctls are the kernel settings the kubelet changes at start
// (protectKernelDefaults off); the harness puts them back afterwards.
var kubeletSysctls = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}

func (c *cluster) saveSysctls() error {
	c.savedSysctls = map[string]string{}
	for _, k := range kubeletSysctls {
		v, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			return fmt.Errorf("read sysctl %s: %w", k, err)
		}
		c.savedSysctls[k] = strings.TrimSpace(string(v))
	}
	return nil
}

func (c *cluster) restoreSysctls() {
	for k, v := range c.savedSysctls {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			c.log.Warn("cannot restore sysctl", "key", k, "value", v, "err", err)
		}
	}
}

// waitReady waits for the node to be Ready and for the default namespace's
// service account and root CA ConfigMap, which every spec's pods need.
func (c *cluster) waitReady(ctx context.Context) error {
	// Generous: on a loaded machine the controller manager takes a while
	// to create the default service account.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		why := ""
		node, err := c.client.CoreV1().Nodes().Get(ctx, c.nodeName, metav1.GetOptions{})
		switch {
		case err != nil:
			why = err.Error()
		case !nodeReady(node):
			why = "node not Ready"
		default:
			if _, err := c.client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
				why = "default service account: " + err.Error()
			} else if _, err := c.client.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{}); err != nil {
				why = "kube-root-ca.crt: " + err.Error()
			}
		}
		if why == "" {
			return nil
		}
		if c.agentProc.exited() {
			return fmt.Errorf("%s exited (see its log in %s)", c.agentProc.name, c.dir)
		}
		// A controller that gave up at start (on a loaded machine it may
		// time out waiting for the API server) is started again, twice at
		// most; its log keeps every attempt.
		for i, p := range c.controllers {
			if !p.exited() {
				continue
			}
			if p.restarts >= 2 {
				return fmt.Errorf("%s exited %d times (see its log in %s)", p.name, p.restarts+1, c.dir)
			}
			c.log.Warn("controller exited during start-up; starting it again", "name", p.name)
			np, err := c.startProcess(p.path, p.args...)
			if err != nil {
				return err
			}
			np.restarts = p.restarts + 1
			c.controllers[i] = np
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cluster not ready: %s", why)
		}
		time.Sleep(time.Second)
	}
}

func nodeReady(n *v1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == v1.NodeReady {
			return cond.Status == v1.ConditionTrue
		}
	}
	return false
}

// phase is one ginkgo run.
type phase struct {
	name        string
	procs       int
	focus       []string
	skip, label string
}

func (c *cluster) runSuite(ctx context.Context, p phase, outDir string) error {
	// One process: the e2e binary runs the specs itself (its -ginkgo.*
	// flags), no ginkgo CLI needed. Several: the ginkgo CLI starts them.
	prefix := "--ginkgo."
	var args []string
	if p.procs > 1 {
		prefix = "--"
		args = append(args, "--procs="+strconv.Itoa(p.procs), "--output-dir", outDir)
	}
	args = append(args, prefix+"no-color", prefix+"timeout=3h", prefix+"poll-progress-after=10m",
		prefix+"junit-report=junit_"+p.name+".xml", prefix+"json-report=report_"+p.name+".json")
	for _, f := range p.focus {
		args = append(args, prefix+"focus="+f)
	}
	if p.skip != "" {
		args = append(args, prefix+"skip="+p.skip)
	}
	if p.label != "" {
		args = append(args, prefix+"label-filter="+p.label)
	}
	e2eArgs := []string{"--kubeconfig=" + c.admin, "--provider=skeleton",
		"--allowed-not-ready-nodes=0", "--kubectl-path=" + c.tools.bin("kubectl"),
		"--report-dir=" + filepath.Join(outDir, "e2e-"+p.name), "--disable-log-dump"}
	name := c.tools.e2e
	if p.procs > 1 {
		name = c.tools.bin("ginkgo")
		args = append(append(args, c.tools.e2e, "--"), e2eArgs...)
	} else {
		args = append(args, e2eArgs...)
	}
	logPath := filepath.Join(outDir, p.name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	c.log.Info("running the suite", "phase", p.name, "log", logPath)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Reports named without a directory land here.
	cmd.Dir = outDir
	start := time.Now()
	err = cmd.Run()
	c.log.Info("suite phase done", "phase", p.name, "took", time.Since(start).Round(time.Second), "exit", err)
	// The suite exits 1 when a spec fails; only a missing report means the
	// phase did not run.
	if _, statErr := os.Stat(filepath.Join(outDir, "report_"+p.name+".json")); statErr != nil {
		return fmt.Errorf("no report (see %s): %v", logPath, err)
	}
	return nil
}

// collectLogs keeps the logs of the agent, the controllers, the API server
// and the runtime with the reports (what is there: after a failed start,
// some are not).
func (c *cluster) collectLogs(outDir string) error {
	files := map[string]string{c.layout().LogFile(): "containerd.log", filepath.Join(c.dir, "cp", "apiserver.log"): "kube-apiserver.log"}
	logs, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
	for _, l := range logs {
		files[l] = filepath.Base(l)
	}
	var errs []error
	for src, dst := range files {
		data, err := os.ReadFile(src)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, os.WriteFile(filepath.Join(outDir, dst), data, 0o644))
	}
	return errors.Join(errs...)
}

// stop ends the agent, removes every pod from the runtime, stops the
// runtime and the control plane, and puts the kernel settings back.
func (c *cluster) stop() {
	if c.agentProc != nil {
		c.agentProc.stop(30 * time.Second)
	}
	if c.runtime != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if rt, err := cri.Connect(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), c.runtime.Endpoint(), 30*time.Second); err == nil {
			sandboxes, _ := rt.ListPodSandbox(ctx, nil)
			for _, sb := range sandboxes {
				_ = rt.StopPodSandbox(ctx, sb.Id)
				_ = rt.RemovePodSandbox(ctx, sb.Id)
			}
		}
		cancel()
		c.runtime.Stop(20 * time.Second)
		_ = exec.Command("ip", "link", "del", containerd.BridgeName(c.layout())).Run()
	}
	for i := len(c.controllers) - 1; i >= 0; i-- {
		c.controllers[i].stop(10 * time.Second)
	}
	if c.cp != nil {
		c.cp.Stop()
	}
	c.restoreSysctls()
	c.killLeftovers()
	c.unmountAll()
	for _, d := range c.cgroupDirs {
		removeCgroup(d)
	}
}

// killLeftovers kills processes whose command line names the run's
// directory (runtime shims of pods the agent left), by pid.
func (c *cluster) killLeftovers() {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), c.dir+"/") {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountAll unmounts what is still mounted under the run's directory
// (volumes of pods, the runtime's netns and rootfs mounts), deepest first.
func (c *cluster) unmountAll() {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return
	}
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && strings.HasPrefix(fields[1], c.dir+"/") {
			mounts = append(mounts, fields[1])
		}
	}
	f.Close()
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// removeCgroup removes a cgroup directory and its children, deepest first.
func removeCgroup(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroup(filepath.Join(dir, e.Name()))
		}
	}
	_ = syscall.Rmdir(dir)
}

func (c *cluster) removeFiles() {
	if err := os.RemoveAll(c.dir); err != nil {
		c.log.Warn("cannot remove the run's files", "dir", c.dir, "err", err)
	}
}
