// Command conformance runs the Kubernetes e2e conformance specs that concern
// a node against a real single-node cluster on this machine: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler v1.37.2, and as
// the only node either knode or the real kubelet v1.37.2 (for comparison),
// each on its own containerd. JUnit and JSON reports land under
// <out>/<agent>/. See docs/conformance.md.
//
//	go run ./test/conformance -agent knode
//	go run ./test/conformance -agent kubelet
//	go run ./test/conformance -compare        # kubelet passes, knode fails
//
// It needs root, the tools hack/setup-node.sh, hack/setup-control-plane.sh
// and hack/setup-conformance.sh build, and a non-loopback address of this
// machine (the API server refuses to proxy to loopback nodes). No traffic
// leaves the machine: the node's address is the machine's own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"knode.io/knode/test/controlplane"
)

// The selection: the node-facing conformance specs, as sonobuoy's node
// conformance mode picks them, plus the storage specs of the volume types
// the node itself implements.
const (
	focusNode    = `\[sig-node\].*\[Conformance\]`
	focusStorage = `\[sig-storage\] (ConfigMap|Secrets|Projected|Downward API|EmptyDir|HostPath).*\[Conformance\]`
	// skipParallel: specs that must run alone go in the serial phase.
	skipParallel = `\[Serial\]|\[Disruptive\]`
)

// subsetFocus is the CI subset: a handful of representative specs that
// pass on knode (pods through the API, volumes from the API, env, probes,
// hooks, exec and logs through the API server).
var subsetFocus = []string{
	`\[sig-node\] Pods should get a host IP`,
	`\[sig-node\] Pods should be submitted and removed`,
	`\[sig-node\] Downward API should provide pod name, namespace and IP address as env vars`,
	`\[sig-storage\] ConfigMap should be consumable from pods in volume \[Conformance\]`,
	`\[sig-storage\] Secrets should be consumable from pods in volume \[Conformance\]`,
	`\[sig-storage\] EmptyDir volumes should support \(root,0644,tmpfs\)`,
	`\[sig-node\] Probing container should be restarted with a exec "cat /tmp/health" liveness probe`,
	`\[sig-node\] Container Lifecycle Hook when create a pod with lifecycle hook should execute poststart http hook properly`,
	`\[sig-node\] Pods should support remote command execution over websockets`,
}

func main() {
	var o options
	flag.StringVar(&o.agent, "agent", "knode", "node agent under test: knode or kubelet")
	flag.StringVar(&o.out, "out", "_output/conformance", "reports go to <out>/<agent>/")
	flag.IntVar(&o.procs, "procs", 5, "parallel ginkgo processes")
	flag.BoolVar(&o.serial, "serial", true, "run the [Serial]/[Disruptive] specs that work on one node after the parallel phase")
	flag.BoolVar(&o.subset, "subset", false, "run only the CI subset (a few minutes)")
	flag.StringVar(&o.focus, "focus", "", "run only specs matching this regex (instead of the selection)")
	flag.BoolVar(&o.dryRun, "dry-run", false, "list the selected specs without a cluster")
	flag.StringVar(&o.e2e, "e2e-binary", "", "e2e test binary (default: the one hack/setup-conformance.sh builds)")
	flag.BoolVar(&o.keep, "keep", false, "leave the cluster's files (logs) in place")
	flag.IntVar(&o.figures, "figures", 0, "after the suite, start this many pods one by one and write figures.json (pod start, API requests, the agent's RSS; `go run ./bench conformance`)")
	compare := flag.Bool("compare", false, "print the specs that pass on the kubelet and fail on knode, from the last reports")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *compare {
		if err := printComparison(os.Stdout, o.out); err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			os.Exit(1)
		}
		return
	}
	if o.agent != "knode" && o.agent != "kubelet" {
		fmt.Fprintln(os.Stderr, "conformance: -agent must be knode or kubelet")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, o); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

type options struct {
	agent, out, focus, e2e string
	procs                  int
	serial, subset, dryRun bool
	keep                   bool
	figures                int
}

// focuses are the ginkgo --focus regexes of the run (OR'ed by ginkgo).
func (o options) focuses() []string {
	switch {
	case o.focus != "":
		return []string{o.focus}
	case o.subset:
		return subsetFocus
	default:
		return []string{focusNode, focusStorage}
	}
}

func run(ctx context.Context, log *slog.Logger, o options) error {
	repo, err := repoRoot()
	if err != nil {
		return err
	}
	tools, err := setupTools(ctx, log, repo, o.subset && o.e2e == "", o.agent)
	if err != nil {
		return err
	}
	if o.e2e != "" {
		tools.e2e = o.e2e
	} else if o.subset {
		// The small subset binary, in one process (no ginkgo CLI).
		o.procs = 1
	}
	outDir, err := filepath.Abs(filepath.Join(o.out, o.agent))
	if err != nil {
		return err
	}
	if err := os.RemoveAll(outDir); err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	if o.dryRun {
		return dryRun(ctx, tools, o, outDir)
	}
	nodeIP, iface, err := controlplane.MachineAddress()
	if err != nil {
		return err
	}
	log.Info("node address: this machine's own", "ip", nodeIP, "interface", iface)

	// Short paths: containerd's shim sockets live under its state dir and
	// unix socket paths are limited to 108 bytes.
	work, err := os.MkdirTemp("/tmp", "kc-"+o.agent+"-")
	if err != nil {
		return err
	}
	c := &cluster{log: log, tools: tools, repo: repo, dir: work, nodeIP: nodeIP, agent: o.agent, nodeName: "conformance-" + o.agent}
	defer func() {
		c.stop()
		if o.keep {
			log.Info("cluster files kept", "dir", work)
		} else {
			c.removeFiles()
		}
	}()
	start := time.Now()
	if err := c.start(ctx); err != nil {
		_ = c.collectLogs(outDir)
		return fmt.Errorf("bring the cluster up (logs in %s): %w", outDir, err)
	}
	log.Info("cluster up", "agent", o.agent, "took", time.Since(start).Round(time.Second))

	suiteStart := time.Now()
	rss := sampleRSS(c.agentProc.cmd.Process.Pid)
	var errs []error
	phases := []phase{{name: "parallel", procs: o.procs, focus: o.focuses(), skip: skipParallel}}
	if o.serial && !o.subset && o.focus == "" {
		phases = append(phases, phase{name: "serial", procs: 1, focus: o.focuses(), label: "Serial || Disruptive", skip: serialSkip()})
	}
	for _, p := range phases {
		if err := c.runSuite(ctx, p, outDir); err != nil {
			errs = append(errs, fmt.Errorf("%s phase: %w", p.name, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	wall := time.Since(suiteStart)
	peak, median := rss.finish()
	if o.figures > 0 && ctx.Err() == nil {
		f := figures{Agent: o.agent, SuiteWall: wall.Round(time.Second).String(), RSSPeakKiB: peak, RSSMedianKiB: median}
		if err := c.measurePodStart(ctx, o.figures, &f); err != nil {
			errs = append(errs, fmt.Errorf("figures: %w", err))
		} else if err := writeFigures(outDir, f); err != nil {
			errs = append(errs, err)
		}
	}
	sum, err := summarize(outDir, o.agent, wall)
	if err != nil {
		errs = append(errs, err)
	} else {
		fmt.Println(sum)
	}
	if err := c.collectLogs(outDir); err != nil {
		log.Warn("cannot copy the agent's log", "err", err)
	}
	// Failed specs are the result, not a harness failure; a phase that could
	// not run at all is.
	return errors.Join(errs...)
}

// serialSkip is the skip regex of the serial phase: what cannot run on one
// node. Each entry says why.
func serialSkip() string {
	cannot := []string{
		// Restarts or reboots nodes through the provider's SSH: no provider here.
		`\[Feature:Reboot\]`,
	}
	return strings.Join(cannot, "|")
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(data), "module knode.io/knode\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run from knode's repository (no knode go.mod above %s)", dir)
		}
	}
}
