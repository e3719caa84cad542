package staticpod

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/apierr"
	"knode.io/knode/internal/podsource"
)

// ErrNotStatic means the pod has no manifest file here to move aside.
var ErrNotStatic = apierr.New(apierr.NotFound, "not a static pod of this node")

// Stopper stops static pods by moving their manifest out of the watched
// directory (into StoppedDir, where it can be moved back), which is how an
// operator stops a static pod by hand too.
type Stopper struct {
	ManifestDir string
	StoppedDir  string
	Pods        interface {
		GetPod(namespace, name string) (*v1.Pod, bool)
	}
}

// StopPod moves the pod's manifest aside; knode then stops the pod with its grace period.
func (s *Stopper) StopPod(namespace, name string) (string, error) {
	pod, ok := s.Pods.GetPod(namespace, name)
	if !ok {
		return "", fmt.Errorf("%w: pod %s/%s", ErrNotStatic, namespace, name)
	}
	file := pod.Annotations[podsource.FileAnnotation]
	if file == "" || filepath.Dir(file) != filepath.Clean(s.ManifestDir) {
		return "", fmt.Errorf("%w: pod %s/%s", ErrNotStatic, namespace, name)
	}
	if err := os.MkdirAll(s.StoppedDir, 0o700); err != nil {
		return "", err
	}
	dest := filepath.Join(s.StoppedDir, filepath.Base(file))
	if err := os.Rename(file, dest); err != nil {
		return "", fmt.Errorf("move %s aside: %w", file, err)
	}
	return dest, nil
}
