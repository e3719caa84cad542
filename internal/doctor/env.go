package doctor

import (
	"context"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/checkpoint/retention"
)

// Env is what the checks look at.
type Env struct {
	RootDir     string
	ManifestDir string
	PodLogsDir  string
	// Endpoint is the configured CRI endpoint; empty means knode's embedded containerd.
	Endpoint       string
	CheckpointGate bool
	Retention      retention.Policy
	RequestTimeout time.Duration
	// KnownSockets are the usual CRI sockets looked for besides the configured one.
	KnownSockets []string
	// DockerConfig is Docker's daemon.json.
	DockerConfig string
	// ContainerLogsDir is where log agents expect the kubelet's symlinks.
	ContainerLogsDir string
	// BoundPods lists the pods the API server bound to this node (cluster
	// mode); nil without a cluster.
	BoundPods func(ctx context.Context) ([]v1.Pod, error)
}

// DefaultKnownSockets are containerd's, CRI-O's, cri-dockerd's and the removed dockershim's.
var DefaultKnownSockets = []string{
	"/run/containerd/containerd.sock",
	"/run/crio/crio.sock",
	"/run/cri-dockerd.sock",
	"/var/run/dockershim.sock",
}

// EmbeddedEndpoint is knode's own containerd under the root dir.
func (e Env) EmbeddedEndpoint() string {
	return "unix://" + filepath.Join(e.RootDir, "containerd", "containerd.sock")
}

// endpoint is the runtime knode would use.
func (e Env) endpoint() string {
	if e.Endpoint != "" {
		return e.Endpoint
	}
	return e.EmbeddedEndpoint()
}
