package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"knode.io/knode/test/images"
)

// tools are the binaries and image archives a run uses.
type tools struct {
	toolsDir     string
	controlPlane string // etcd, kube-apiserver
	conformance  string // hack/setup-conformance.sh's bin
	containerd   string // containerd, its shim, ctr
	criuDir      string // CRIU 4.1 wrapper, first on the runtime's PATH if present
	knode        string
	e2e          string
	images       string // directory of *.tar image archives
}

func (t tools) bin(name string) string { return filepath.Join(t.conformance, name) }

// setupTools runs the setup scripts (each builds only what is missing),
// builds knode and the images' helper binaries, and writes the images.
// ciOnly builds only what the CI subset needs (and the kubelet when it is
// the agent).
func setupTools(ctx context.Context, log *slog.Logger, repo string, ciOnly bool, agent string) (tools, error) {
	t := tools{toolsDir: os.Getenv("KNODE_TOOLS_DIR")}
	if t.toolsDir == "" {
		t.toolsDir = "/usr/local/lib/knode-ci"
	}
	t.containerd = filepath.Join(t.toolsDir, "containerd-v2.4.2", "bin")
	if _, err := os.Stat(filepath.Join(t.containerd, "containerd")); err != nil {
		return t, fmt.Errorf("no containerd build in %s: run hack/setup-node.sh (make setup) first", t.containerd)
	}
	if fi, err := os.Stat(filepath.Join(t.toolsDir, "criu-trixie", "wrapper")); err == nil && fi.IsDir() {
		t.criuDir = filepath.Join(t.toolsDir, "criu-trixie", "wrapper")
	}
	script := func(name string, env ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(repo, "hack", name))
		cmd.Env = append(append(os.Environ(), "KNODE_TOOLS_DIR="+t.toolsDir), env...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("hack/%s: %w", name, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return lines[len(lines)-1], nil
	}
	var err error
	if t.controlPlane, err = script("setup-control-plane.sh"); err != nil {
		return t, err
	}
	var env []string
	if ciOnly {
		// The CI subset runs in one process of the small e2e binary: no
		// ginkgo CLI, no kubectl, no kubelet, no full e2e.test.
		names := "kube-controller-manager kube-scheduler agnhost nnp e2e-subset.test"
		if agent == "kubelet" {
			names += " kubelet"
		}
		env = append(env, "CONFORMANCE_BINARIES="+names)
	}
	if t.conformance, err = script("setup-conformance.sh", env...); err != nil {
		return t, err
	}
	t.e2e = t.bin("e2e.test")
	if ciOnly {
		t.e2e = t.bin("e2e-subset.test")
	}

	build := filepath.Join(repo, "_output", "conformance", "bin")
	if err := os.MkdirAll(build, 0o755); err != nil {
		return t, err
	}
	for name, pkg := range map[string]string{"knode": "./cmd/knode", "pause": "./hack/pause", "e2esh": "./hack/e2esh", "e2ecurl": "./hack/e2ecurl"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", "grpcnotrace", "-o", filepath.Join(build, name), pkg) // as the Makefile builds knode
		cmd.Dir, cmd.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return t, fmt.Errorf("build %s: %w: %s", pkg, err, out)
		}
	}
	t.knode = filepath.Join(build, "knode")
	t.images = filepath.Join(repo, "_output", "conformance", "images")
	log.Info("writing the e2e images", "dir", t.images)
	if err := images.WriteE2E(t.images, images.E2EBinaries{
		Pause: filepath.Join(build, "pause"), Busybox: "/bin/busybox", Shell: filepath.Join(build, "e2esh"),
		Agnhost: t.bin("agnhost"), Curl: filepath.Join(build, "e2ecurl"), Nonewprivs: t.bin("nnp"),
	}); err != nil {
		return t, err
	}
	return t, nil
}
