package criu

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"knode.io/knode/internal/nodeinfo"
)

const vdsoHint = "hint: CRIU is older than 4.1 and this kernel is 6.13 or newer, whose split vDSO/vvar mapping (vvar_vclock) " +
	"older CRIU cannot dump (\"Unexpected rt vDSO area bounds\"). Install CRIU >= 4.1 and put it first on the runtime's PATH"

// Diagnosis explains why a runtime could not checkpoint, in terms an
// operator can act on. runtime is "<name>://<version>".
func Diagnosis(err error, runtime string) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	switch {
	case status.Code(err) == codes.Unimplemented || strings.Contains(msg, "code = Unimplemented"):
		return fmt.Sprintf("hint: the runtime %s does not implement CheckpointContainer. Checkpointing needs containerd 2.x, "+
			"or CRI-O >= 1.25 with checkpoint support enabled (enable_criu_support = true); containerd 1.6 does not implement it.", runtime)
	case strings.Contains(msg, "Unexpected rt vDSO area bounds") || strings.Contains(msg, "vvar_vclock") ||
		criuLogMentions(msg, "Unexpected rt vDSO area bounds"):
		return vdsoHint
	case strings.Contains(msg, "criu failed"):
		// The log may be gone already; check the CRIU on PATH against the kernel.
		if c := Find(); VDSOProblem(c.Version, nodeinfo.KernelRelease()) {
			return fmt.Sprintf("%s (found CRIU %s at %s, kernel %s)", vdsoHint, c.Version, c.Path, majorMinor(nodeinfo.KernelRelease()))
		}
	case strings.Contains(msg, "criu") && (strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file")):
		return "hint: CRIU is not installed where the runtime looks for it (runc finds `criu` on its PATH). Install CRIU >= 4.1."
	case strings.Contains(msg, "criu") && strings.Contains(strings.ToLower(msg), "version"):
		return "hint: the installed CRIU is too old for the runtime; runc needs CRIU >= 3.16, and kernels from 6.13 need CRIU >= 4.1."
	}
	return ""
}
