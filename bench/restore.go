package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func toolsDir() string {
	if d := os.Getenv("KNODE_TOOLS_DIR"); d != "" {
		return d
	}
	return "/usr/local/lib/knode-ci"
}

// benchRestore: two nodes on containerd 2.3.7 (restore via CreateContainer).
// For 64/256/1024 MiB: checkpoint on A, fetch to B with `knode restore`
// (compared with cp of the same file), then manifest written → restored
// container Running on B, against bare CRI RunPodSandbox + CreateContainer
// (image = archive) + StartContainer of the same archive on B.
func benchRestore() error {
	criu := filepath.Join(toolsDir(), "criu-trixie", "wrapper")
	ctrd := filepath.Join(toolsDir(), "containerd-v2.3.7", "bin")
	a, err := newEnvWith(false, criu, ctrd)
	if err != nil {
		return err
	}
	defer a.close()
	b, err := newEnvWith(false, criu, ctrd)
	if err != nil {
		return err
	}
	defer b.close()
	sizes := []int{64, 256, 1024}
	for _, mib := range sizes {
		name := fmt.Sprintf("hog%d", mib)
		if err := a.writeManifest(name+".yaml", fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {name: hog, image: knode.local/busybox:1.36, command: [memhog, \"%d\"]}\n", name, mib)); err != nil {
			return err
		}
	}
	if err := a.startKnode("--checkpoint-max-per-container", "1"); err != nil {
		return err
	}
	if err := b.startKnode(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	for _, mib := range sizes {
		if err := a.waitRunning(ctx, fmt.Sprintf("hog%d", mib)); err != nil {
			return err
		}
	}
	time.Sleep(5 * time.Second)
	ca, err := a.httpClient(1)
	if err != nil {
		return err
	}
	apki := filepath.Join(a.root, "pki")
	for _, mib := range sizes {
		pod := fmt.Sprintf("hog%d-bench", mib)
		ckpt, path, err := a.post(ca, "/checkpoint/default/"+pod+"/hog?timeout=600")
		if err != nil {
			return err
		}
		archive := filepath.Base(path)

		// Transfer: knode restore (HTTPS, digest verified) vs cp.
		cpDest := filepath.Join(b.dir, "cp-"+archive)
		start := time.Now()
		if out, err := exec.Command("cp", path, cpDest).CombinedOutput(); err != nil {
			return fmt.Errorf("cp: %v: %s", err, out)
		}
		cpTime := time.Since(start)
		start = time.Now()
		manifest := filepath.Join(b.dir, "restore-"+pod+".json")
		out, err := exec.Command("_output/bin/knode", "restore", "--from", a.url("/checkpoints/"+archive),
			"--client-certificate", filepath.Join(apki, "admin.crt"), "--client-key", filepath.Join(apki, "admin.key"),
			"--certificate-authority", filepath.Join(apki, "kubelet.crt"),
			"--root-dir", b.root, "--pod-manifest", manifest, "--name", fmt.Sprintf("moved%d", mib)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("knode restore: %v: %s", err, out)
		}
		transfer := time.Since(start)

		// Bare CRI restore of the same archive on B.
		bare, err := b.bareRestore(ctx, filepath.Join(b.root, "restore", archive), mib)
		if err != nil {
			return err
		}

		// Through knode: manifest written → Running.
		data, _ := os.ReadFile(manifest)
		start = time.Now()
		if err := b.writeManifest(fmt.Sprintf("moved%d.json", mib), string(data)); err != nil {
			return err
		}
		if err := b.waitRunning(ctx, fmt.Sprintf("moved%d", mib)); err != nil {
			return err
		}
		restore := time.Since(start)
		fmt.Printf("%4d MiB: checkpoint on A %s | transfer: knode restore %s, cp %s | restore on B: knode manifest->Running %s, bare CRI sandbox+create+start %s\n",
			mib, ms(ckpt), ms(transfer), ms(cpTime), ms(restore), ms(bare))
		_ = os.Remove(cpDest)
	}
	return nil
}

// bareRestore runs the archive in a fresh sandbox through bare CRI calls
// (the archive as the image), then removes the sandbox again.
func (e *env) bareRestore(ctx context.Context, archive string, mib int) (time.Duration, error) {
	return e.bareRun(ctx, fmt.Sprintf("bare-restore-%d-%d", mib, time.Now().UnixNano()), &runtimeapi.ImageSpec{Image: archive}, nil)
}
