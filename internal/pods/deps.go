package pods

import (
	"context"
	"log/slog"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/flowcontrol"

	"knode.io/knode/internal/apivolume"
	"knode.io/knode/internal/crispec"
)

// workerDeps is what a pod worker uses, grouped by concern, and of the
// manager's bookkeeping only its own pod's record (records). Each group is
// a small struct, and the helpers of a concern are methods of its group
// alone, so a file reads as what it needs: podFiles for a pod's host
// files, hookRunner for lifecycle hooks and stops, envAPI for env
// sources. The three groups nearly every file uses (the runtime, reporting,
// admission) are embedded. Something new a worker needs goes into the
// group of its concern, or a new group.
type workerDeps struct {
	criAccess
	reporting
	admission
	// files are the pod's host files: volumes, subPaths, /etc/hosts,
	// resolv.conf, termination messages, log links.
	files *podFiles
	// hooks run lifecycle hooks and stop containers.
	hooks *hookRunner
	// env reads the ConfigMaps and Secrets env sources name.
	env envAPI
	// probes is what all pods' probe workers share; each pod's own are in
	// its record.
	probes *probeRunner
	// node is what the CRI configs are built from besides the pod.
	node crispec.Node
	// ResyncPeriod is how often a pod is synced without a change.
	ResyncPeriod time.Duration
	// records is the manager's side of each pod: its desired spec, status
	// and what others asked of it (eviction, deletion grace).
	records podRecords
	// pulls is what pulling with registry credentials needs.
	pulls *imagePulls
	// allocs are the pods' allocated and applied resources (in-place resize).
	allocs *allocations
}

// criAccess is the runtime as the workers call it.
type criAccess struct {
	Runtime Runtime
	Images  Images
	// RuntimeName prefixes container IDs in status.
	RuntimeName string
	// NodeName selects this node's sandboxes and containers.
	NodeName       string
	RequestTimeout time.Duration
	// cache keeps container statuses and sandbox IPs between syncs.
	cache *statusCache
	// backoff is the crash-loop and image-pull back-off, shared so a
	// worker that restarts keeps its pod's delays.
	backoff *flowcontrol.Backoff
	// runtimeClasses resolves runtimeClassName; nil without an API server.
	runtimeClasses RuntimeClasses
}

// reporting is where the workers say what happened.
type reporting struct {
	log      *slog.Logger
	Now      func() time.Time
	Recorder Recorder
	Events   EventRecorder
}

// admission is what decides whether and how a pod may run.
type admission struct {
	// Cgroups makes each pod's cgroup with its limits before its sandbox.
	Cgroups  PodCgroups
	Devices  Devices
	Restores Restorer
	Pressure interface{ MemoryPressure() (bool, error) }
}

// podFiles makes and reads the files knode keeps for a pod on the host.
type podFiles struct {
	RootDir    string
	PodLogsDir string
	// ContainerLogsDir gets the /var/log/containers symlinks; "" for none.
	ContainerLogsDir string
	// ResolvConf is the host's resolv.conf the pods' DNS starts from ("": none).
	ResolvConf string
	// NodeEtcHosts is the node's hosts file ("": /etc/hosts).
	NodeEtcHosts   string
	RequestTimeout time.Duration
	node           crispec.Node
	log            *slog.Logger
	// allocatable is the node's allocatable (nil: its capacity), which
	// sizes memory-backed emptyDirs.
	allocatable func() v1.ResourceList
	// apiVols writes the pods' ConfigMap, Secret, projected and downwardAPI
	// volumes; what it keeps of each pod's is in the pod's record.
	apiVols *apivolume.Volumes
	// userns keeps the user namespace ranges, in the pods' directories.
	userns UserNamespaces
}

// podFileState is what one pod's host files keep between writes; the
// pod's record owns it.
type podFileState struct {
	// volumes is what its ConfigMap, Secret, projected and downwardAPI
	// volumes keep between refreshes (tokens, last content).
	volumes *apivolume.PodState
	// hosts is what its managed /etc/hosts was last written with.
	hosts writtenFile
}

func newPodFileState() *podFileState {
	return &podFileState{volumes: apivolume.NewPodState()}
}

// hookRuntime is what hooks need of the runtime.
type hookRuntime interface {
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, err error)
	StopContainer(ctx context.Context, containerID string, timeout int64) error
}

// hookRunner runs lifecycle hooks and stops containers after their preStop.
type hookRunner struct {
	Runtime hookRuntime
	// Prober runs HTTP hooks the way probes run.
	Prober         Prober
	Events         EventRecorder
	RequestTimeout time.Duration
	log            *slog.Logger
}

// envAPI reads the ConfigMaps and Secrets env sources name, and the
// Services of the service environment.
type envAPI struct {
	// objects is nil without an API server.
	objects        APIObjects
	RequestTimeout time.Duration
	// services gives the pods' service environment; nil without an API server.
	services Services
}

// podRecords is what a worker reads and writes of its pod's record.
type podRecords interface {
	// desired is the pod's spec as the sources declare it, nil once none does.
	desired(uid types.UID) *v1.Pod
	setStatus(uid types.UID, st *v1.PodStatus)
	statusOf(uid types.UID) *v1.PodStatus
	// annotate adds an annotation to the pod knode serves (restored-from).
	annotate(uid types.UID, key, value string)
	takeEviction(uid types.UID) (evictOrder, bool)
	// graceFor is the grace period an API deletion asked for, if any.
	graceFor(uid types.UID) (int64, bool)
	// terminating reports whether any pod is being stopped.
	terminating() bool
	// workerDone ends the pod's record once it is gone from sources and
	// runtime; false if the pod came back meanwhile.
	workerDone(uid types.UID) bool
	// wakeRelist asks for a relist now.
	wakeRelist()
	// admit runs the admission chain against the pods admitted before.
	admit(uid types.UID, pod *v1.Pod) (ok bool, reason, message string)
	// markAdmitted counts a pod found running as admitted.
	markAdmitted(uid types.UID)
}

func newWorkerDeps(opts Options, records podRecords) *workerDeps {
	node := crispec.Node{NodeName: opts.NodeName, HostIP: opts.HostIP, CgroupRoot: opts.CgroupRoot,
		PodLogsDir: opts.PodLogsDir, ClusterDomain: opts.ClusterDomain, ClusterDNS: opts.ClusterDNS, CPUs: opts.NodeCPUs, MemoryBytes: opts.NodeMemoryBytes,
		Security: opts.Security}
	d := &workerDeps{
		criAccess: criAccess{Runtime: opts.Runtime, Images: opts.Images, RuntimeName: opts.RuntimeName, NodeName: opts.NodeName, runtimeClasses: opts.RuntimeClasses,
			RequestTimeout: opts.RequestTimeout, cache: newStatusCache(), backoff: flowcontrol.NewBackOff(opts.BackoffInitial, opts.BackoffMax)},
		reporting: reporting{log: opts.Log, Now: opts.Now, Recorder: opts.Recorder, Events: opts.Events},
		admission: admission{Cgroups: opts.Cgroups, Devices: opts.Devices, Restores: opts.Restores, Pressure: opts.Pressure},
		files: &podFiles{allocatable: opts.Allocatable, RootDir: opts.RootDir, PodLogsDir: opts.PodLogsDir, ContainerLogsDir: opts.ContainerLogsDir,
			ResolvConf: opts.ResolvConf, NodeEtcHosts: opts.NodeEtcHosts, RequestTimeout: opts.RequestTimeout, node: node, log: opts.Log,
			apiVols: newAPIVolumes(opts.APIObjects, node, opts.Now, opts.Log), userns: opts.UserNamespaces},
		hooks:        &hookRunner{Runtime: opts.Runtime, Prober: opts.Prober, Events: opts.Events, RequestTimeout: opts.RequestTimeout, log: opts.Log},
		env:          envAPI{objects: opts.APIObjects, RequestTimeout: opts.RequestTimeout, services: opts.Services},
		probes:       newProbeRunner(opts.Prober, opts.Events, opts.Log, opts.Now()),
		node:         node,
		ResyncPeriod: opts.ResyncPeriod,
		records:      records,
		pulls:        &imagePulls{secrets: opts.PullSecrets, rootDir: opts.RootDir, records: newPullRecords(opts.RootDir, opts.Log)},
		allocs:       newAllocations(allocatableCPUMemory(opts), opts.Log),
	}
	// A resize is admitted by the same chain as a new pod.
	if m, ok := records.(interface {
		resizeFits(*v1.Pod) (bool, string)
	}); ok {
		d.allocs.fit = m.resizeFits
	}
	return d
}
