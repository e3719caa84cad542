package pods

import (
	"path/filepath"

	v1 "k8s.io/api/core/v1"
)

// dockerPaths are the host paths that expose the Docker socket: the socket
// itself, dockershim's, and the directories above them (the usual grep for
// "docker.sock" misses a pod that mounts /var/run).
var dockerPaths = []string{"/var/run/docker.sock", "/run/docker.sock", "/var/run/dockershim.sock", "/run/dockershim.sock", "/var/run", "/run", "/var", "/"}

// MountsDockerSocket tells whether a pod mounts the Docker socket by
// hostPath, directly or through a parent directory, and which path.
func MountsDockerSocket(pod *v1.Pod) (string, bool) {
	for _, vol := range pod.Spec.Volumes {
		if vol.HostPath == nil {
			continue
		}
		p := filepath.Clean(vol.HostPath.Path)
		for _, d := range dockerPaths {
			if p == d {
				return p, true
			}
		}
	}
	return "", false
}
