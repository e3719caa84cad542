package pods

import (
	"log/slog"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/flowcontrol"

	"knode.io/knode/internal/apivolume"
	"knode.io/knode/internal/crispec"
)

// workerDeps is everything a pod worker uses, and nothing of the manager's
// bookkeeping: the runtime, the node's settings, the components shared by
// all workers, and its own pod's record through records. A worker that
// needs something new gets a field here, so what a sync may touch stays
// visible in one place.
type workerDeps struct {
	Runtime     Runtime
	Images      Images
	RuntimeName string
	NodeName    string
	RootDir     string
	PodLogsDir  string
	HostIP      string
	// ResolvConf is the host's resolv.conf the pods' DNS starts from ("": none).
	ResolvConf string
	// NodeEtcHosts is the node's hosts file ("": /etc/hosts).
	NodeEtcHosts   string
	RequestTimeout time.Duration
	ResyncPeriod   time.Duration
	Now            func() time.Time
	Recorder       Recorder
	Events         EventRecorder
	Devices        Devices
	Restores       Restorer
	Pressure       interface{ MemoryPressure() (bool, error) }
	// Prober runs HTTP lifecycle hooks the way probes run.
	Prober Prober
	// ContainerLogsDir gets the /var/log/containers symlinks; "" for none.
	ContainerLogsDir string
	// Admit are the admission checks of Options.Admit.
	Admit []func(pod *v1.Pod) error

	log *slog.Logger
	// backoff is the crash-loop and image-pull back-off, shared so a
	// worker that restarts keeps its pod's delays.
	backoff *flowcontrol.Backoff
	cache   *statusCache
	probes  *probes
	// apiVols writes the pods' ConfigMap, Secret, projected and downwardAPI
	// volumes and remembers them between refreshes.
	apiVols *apivolume.Volumes
	// objects reads the ConfigMaps and Secrets env sources name; nil
	// without an API server.
	objects APIObjects
	// node is what the CRI configs are built from besides the pod.
	node crispec.Node
	// records is the manager's side of each pod: its desired spec, status
	// and what others asked of it (eviction, deletion grace).
	records podRecords
}

// podRecords is what a worker reads and writes of its pod's record.
type podRecords interface {
	// desired is the pod's spec as the sources declare it, nil once none does.
	desired(uid types.UID) *v1.Pod
	setStatus(uid types.UID, st *v1.PodStatus)
	statusOf(uid types.UID) *v1.PodStatus
	// annotate adds an annotation to the pod knode serves (restored-from).
	annotate(uid types.UID, key, value string)
	takeEviction(uid types.UID) (waiting, bool)
	// graceFor is the grace period an API deletion asked for, if any.
	graceFor(uid types.UID) (int64, bool)
	// terminating reports whether any pod is being stopped.
	terminating() bool
	// workerDone ends the pod's record once it is gone from sources and
	// runtime; false if the pod came back meanwhile.
	workerDone(uid types.UID) bool
	// wakeRelist asks for a relist now.
	wakeRelist()
}

func newWorkerDeps(opts Options, records podRecords) *workerDeps {
	d := &workerDeps{
		Runtime:          opts.Runtime,
		Images:           opts.Images,
		RuntimeName:      opts.RuntimeName,
		NodeName:         opts.NodeName,
		RootDir:          opts.RootDir,
		PodLogsDir:       opts.PodLogsDir,
		HostIP:           opts.HostIP,
		RequestTimeout:   opts.RequestTimeout,
		ResyncPeriod:     opts.ResyncPeriod,
		Now:              opts.Now,
		Recorder:         opts.Recorder,
		Events:           opts.Events,
		Devices:          opts.Devices,
		Restores:         opts.Restores,
		Pressure:         opts.Pressure,
		Prober:           opts.Prober,
		ContainerLogsDir: opts.ContainerLogsDir,
		Admit:            opts.Admit,
		log:              opts.Log,
		backoff:          flowcontrol.NewBackOff(opts.BackoffInitial, opts.BackoffMax),
		cache:            newStatusCache(),
		probes:           newProbes(opts.Prober, opts.Events, opts.Log, opts.Now()),
		ResolvConf:       opts.ResolvConf,
		NodeEtcHosts:     opts.NodeEtcHosts,
		node: crispec.Node{NodeName: opts.NodeName, HostIP: opts.HostIP, CgroupRoot: opts.CgroupRoot,
			PodLogsDir: opts.PodLogsDir, ClusterDomain: opts.ClusterDomain, CPUs: opts.NodeCPUs, MemoryBytes: opts.NodeMemoryBytes,
			Security: opts.Security},
		records: records,
		objects: opts.APIObjects,
	}
	d.apiVols = d.newAPIVolumes(opts.APIObjects)
	return d
}
