package pods

import (
	"context"
	"log/slog"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	podadmission "knode.io/knode/internal/admission"
	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/prober"
)

// Options configure a Manager.
type Options struct {
	Runtime Runtime
	Images  Images
	// RuntimeName prefixes container IDs in status ("containerd://<id>").
	RuntimeName string
	RootDir     string
	PodLogsDir  string
	CgroupRoot  string
	ResolvConf  string
	// ClusterDomain is the kubelet's clusterDomain, in a pod's FQDN.
	ClusterDomain string
	// ClusterDNS are the cluster's DNS servers (--cluster-dns), the
	// nameservers of ClusterFirst pods; none: they get the node's.
	ClusterDNS []string
	// NodeEtcHosts is the node's hosts file a host-network pod gets a copy
	// of ("": /etc/hosts, as the kubelet).
	NodeEtcHosts string
	HostIP       string
	// NodeName labels every sandbox and container knode makes; knode sees
	// only those with its own name, so agents can share a runtime.
	NodeName string
	// NodeCPUs and NodeMemoryBytes stand in for a missing limit in the downward API.
	NodeCPUs        int
	NodeMemoryBytes int64
	// RelistPeriod is how often the runtime is listed to notice changes (the kubelet's PLEG: 1 s).
	RelistPeriod time.Duration
	// ResyncPeriod is how often every pod is synced even without changes.
	ResyncPeriod time.Duration
	// RequestTimeout bounds each CRI call (long-running stops excepted).
	RequestTimeout time.Duration
	Log            *slog.Logger
	// BackoffInitial and BackoffMax are the crash-loop back-off (10 s doubling to 5 min).
	BackoffInitial, BackoffMax time.Duration
	Now                        func() time.Time
	// Recorder receives pod and container start events for metrics; may be nil.
	Recorder Recorder
	// Pressure, when set, refuses new BestEffort pods under memory pressure,
	// as the kubelet's admission does.
	Pressure interface{ MemoryPressure() (bool, error) }
	// Prober runs container probes; nil: knode's own, exec probes through Runtime.
	Prober Prober
	// Events publishes the kubelet's pod events (Pulled, Created, Started,
	// Killing, BackOff, ...), in cluster mode to the API server; may be nil.
	Events EventRecorder
	// Devices allocates device-plugin resources; may be nil.
	Devices Devices
	// APIObjects reads ConfigMaps, Secrets and service account tokens for
	// API pods' volumes (cluster mode); may be nil.
	APIObjects APIObjects
	// Services gives the pods' service environment (cluster mode); nil: none.
	Services Services
	// Allocatable is the node's allocatable resources, which an in-place
	// resize must fit; nil: the node's CPUs and memory.
	Allocatable func() v1.ResourceList
	// PullSecrets reads the image pull secrets API pods name; may be nil.
	PullSecrets PullSecrets
	// OnRemoved is told when a pod that no source declares any more is
	// gone from the runtime (cluster mode then deletes the API object).
	OnRemoved func(uid types.UID)
	// Restores picks checkpoint archives to restore containers from; may be nil.
	Restores Restorer
	// Cgroups makes and removes the pods' own cgroups (the kubelet's pod
	// container manager); nil: none, the runtime makes the sandbox's parent.
	Cgroups PodCgroups
	// Admission decides, before a pod's first sandbox, whether the node
	// takes it (the kubelet's admit handlers); nil admits every pod.
	Admission podadmission.Handler
	// ContainerLogsDir gets the kubelet's /var/log/containers symlinks
	// (<pod>_<ns>_<container>-<id>.log), for log agents; empty disables them.
	ContainerLogsDir string
	// RuntimeClasses resolves a pod's runtimeClassName to its CRI runtime
	// handler (cluster mode); nil knows no RuntimeClass, and a pod that
	// names one gets no sandbox rather than the default handler.
	RuntimeClasses RuntimeClasses
	// Security is what the containers' security contexts take from the
	// node (seccompDefault, the seccomp profile root, the host's masked paths).
	Security crispec.Security
	// UserNamespaces gives pods with hostUsers false their ID ranges; nil:
	// such a pod gets no sandbox.
	UserNamespaces UserNamespaces
}

// UserNamespaces allocates and keeps the user namespaces of pods with
// hostUsers false (the kubelet's userns manager).
type UserNamespaces interface {
	// GetOrCreate is the pod's user namespace on the runtime handler (nil:
	// the host's); an error when the handler has none.
	GetOrCreate(pod *v1.Pod, handler string) (*runtimeapi.UserNamespace, error)
	// Release frees the range of a pod nothing of which runs any more.
	Release(uid types.UID) error
	// Retain frees the ranges of pods not in keep.
	Retain(keep map[types.UID]bool) error
}

// RuntimeClasses resolves RuntimeClass names to runtime handlers.
type RuntimeClasses interface {
	RuntimeHandler(ctx context.Context, name string) (string, error)
}

// Devices is the device manager as the pod workers use it.
type Devices interface {
	// Allocate admits the pod's device requests. An error with a Reason()
	// method fails the pod's admission for good (UnexpectedAdmissionError);
	// any other error is retried.
	Allocate(ctx context.Context, pod *v1.Pod) error
	// Apply merges the plugins' answers into a container's CRI config.
	Apply(pod *v1.Pod, c *v1.Container, cfg *runtimeapi.ContainerConfig)
	// PreStart runs the plugins' PreStartContainer before each start.
	PreStart(ctx context.Context, pod *v1.Pod, c *v1.Container) error
	// Release frees a removed pod's devices.
	Release(uid types.UID)
	// Retain frees the devices of pods not in keep.
	Retain(keep map[types.UID]bool)
}

// PodCgroups makes a pod's cgroup (its sandbox's CgroupParent) with the
// pod's limits, and removes it once nothing of the pod runs.
type PodCgroups interface {
	EnsurePod(pod *v1.Pod) error
	RemovePod(pod *v1.Pod) error
	// RemoveOrphans destroys the cgroups of pods not in keep (left by
	// pods that went while knode was down), killing what still runs there.
	RemoveOrphans(keep map[types.UID]bool) ([]types.UID, error)
}

type noCgroups struct{}

func (noCgroups) EnsurePod(*v1.Pod) error                               { return nil }
func (noCgroups) RemovePod(*v1.Pod) error                               { return nil }
func (noCgroups) RemoveOrphans(map[types.UID]bool) ([]types.UID, error) { return nil, nil }

// Restorer decides which containers start from a checkpoint archive.
type Restorer interface {
	// Source returns the archive to restore c from ("" for none) and whether
	// the pod falls back to the image when the restore fails. An error (with
	// a Reason() method) means the archive cannot be used.
	Source(pod *v1.Pod, c *v1.Container) (archive string, fallbackToImage bool, err error)
	// CreateFailed explains the runtime's refusal to create from an archive,
	// as an error with a Reason() method.
	CreateFailed(archive string, err error) error
	// Describe names an archive (and its digest) for the pod's annotation.
	Describe(archive string) string
}

type noRestores struct{}

func (noRestores) Source(*v1.Pod, *v1.Container) (string, bool, error) { return "", false, nil }
func (noRestores) CreateFailed(_ string, err error) error              { return err }
func (noRestores) Describe(archive string) string                      { return archive }

type noDevices struct{}

func (noDevices) Allocate(context.Context, *v1.Pod) error                   { return nil }
func (noDevices) Apply(*v1.Pod, *v1.Container, *runtimeapi.ContainerConfig) {}
func (noDevices) PreStart(context.Context, *v1.Pod, *v1.Container) error    { return nil }
func (noDevices) Release(types.UID)                                         {}
func (noDevices) Retain(map[types.UID]bool)                                 {}

// Recorder is told about starts, for the kubelet's started_* and
// pod_start_duration metrics.
type Recorder interface {
	SandboxStarted(err error)
	ContainerStarted(containerType string, err error)
	PodRunning(sinceFirstSeen time.Duration)
	// RestoreDone counts a restore: result is "success" or the failure's reason.
	RestoreDone(result string, d time.Duration)
}

// EventRecorder publishes an event about a pod; eventType is Normal or Warning.
type EventRecorder interface {
	Event(pod *v1.Pod, eventType, reason, message string)
}

type nopEvents struct{}

func (nopEvents) Event(*v1.Pod, string, string, string) {}

type nopRecorder struct{}

func (nopRecorder) SandboxStarted(error)              {}
func (nopRecorder) ContainerStarted(string, error)    {}
func (nopRecorder) PodRunning(time.Duration)          {}
func (nopRecorder) RestoreDone(string, time.Duration) {}

// withDefaults fills what was left unset.
func (opts Options) withDefaults() Options {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.RelistPeriod == 0 {
		opts.RelistPeriod = time.Second
	}
	if opts.ResyncPeriod == 0 {
		opts.ResyncPeriod = time.Minute
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 2 * time.Minute
	}
	if opts.BackoffInitial == 0 {
		opts.BackoffInitial = 10 * time.Second
	}
	if opts.BackoffMax == 0 {
		opts.BackoffMax = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Recorder == nil {
		opts.Recorder = nopRecorder{}
	}
	if opts.Events == nil {
		opts.Events = nopEvents{}
	}
	if opts.Prober == nil {
		opts.Prober = prober.New(opts.Runtime)
	}
	if opts.Devices == nil {
		opts.Devices = noDevices{}
	}
	if opts.Cgroups == nil {
		opts.Cgroups = noCgroups{}
	}
	if opts.Restores == nil {
		opts.Restores = noRestores{}
	}
	if opts.RuntimeName == "" {
		opts.RuntimeName = "cri"
	}
	return opts
}
