package containerd

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
)

// ImportArchives imports each *.tar image archive (OCI layout or docker save
// format) in dir into the k8s.io namespace, where CRI sees images. It uses
// the ctr binary next to containerd or on PATH.
func ImportArchives(ctx context.Context, containerdBinary, socket, dir string) ([]string, error) {
	archives, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return nil, fmt.Errorf("list image archives: %w", err)
	}
	sort.Strings(archives)
	if len(archives) == 0 {
		return nil, nil
	}
	ctr := filepath.Join(filepath.Dir(containerdBinary), "ctr")
	if _, err := exec.LookPath(ctr); err != nil {
		if ctr, err = exec.LookPath("ctr"); err != nil {
			return nil, fmt.Errorf("importing image archives needs ctr (built with containerd): %w", err)
		}
	}
	for _, archive := range archives {
		out, err := exec.CommandContext(ctx, ctr, "--address", socket, "--namespace", "k8s.io",
			"images", "import", archive).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("import %s: %w: %s", archive, err, out)
		}
	}
	return archives, nil
}
