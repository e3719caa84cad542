package crispec

import (
	"fmt"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TerminationMessageMount is the kubelet's termination-log mount (its
// makeMounts): the file the node made for this instance, hostPath, bound
// read-write at the container's terminationMessagePath, after the volume
// mounts. A container without a path gets none (nil, nil); a relative path
// or an unknown policy is refused, as the API server's validation refuses
// them, rather than mounted somewhere the spec did not say.
func TerminationMessageMount(c *v1.Container, hostPath string) (*runtimeapi.Mount, error) {
	if c.TerminationMessagePath == "" {
		return nil, nil
	}
	switch c.TerminationMessagePolicy {
	case "", v1.TerminationMessageReadFile, v1.TerminationMessageFallbackToLogsOnError:
	default:
		return nil, fmt.Errorf("container %q: unknown terminationMessagePolicy %q (supported: File, FallbackToLogsOnError)", c.Name, c.TerminationMessagePolicy)
	}
	if !filepath.IsAbs(c.TerminationMessagePath) {
		return nil, fmt.Errorf("container %q: terminationMessagePath %q must be an absolute path", c.Name, c.TerminationMessagePath)
	}
	return &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: hostPath}, nil
}
