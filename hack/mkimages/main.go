// Command mkimages writes the pause and busybox image archives that knode's
// examples and tests import into containerd (no registry is reachable here).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"knode.io/knode/test/images"
)

func main() {
	out := flag.String("out", "_output/images", "directory for the image archives")
	pause := flag.String("pause-binary", "_output/bin/pause", "static pause binary")
	busybox := flag.String("busybox-binary", "/bin/busybox", "static busybox binary (Debian: busybox-static)")
	memhog := flag.String("memhog-binary", "", "static memhog binary added to the busybox image (for checkpoint benchmarks)")
	flag.Parse()
	if err := run(*out, *pause, *busybox, *memhog); err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

func run(out, pause, busybox, memhog string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := images.WritePause(filepath.Join(out, "pause.tar"), pause); err != nil {
		return err
	}
	extra := map[string]string{}
	if memhog != "" {
		extra["memhog"] = memhog
	}
	return images.WriteBusybox(filepath.Join(out, "busybox.tar"), busybox, extra)
}
