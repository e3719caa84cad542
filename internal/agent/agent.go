// Package agent wires knode together in the order data flows:
// config → runtime connection → pod sources → pod workers → runtime.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"knode.io/knode/internal/admission"
	"knode.io/knode/internal/cluster"
	"knode.io/knode/internal/config"
	"knode.io/knode/internal/containerd"
	"knode.io/knode/internal/cri"
	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/devicemanager"
	"knode.io/knode/internal/eviction"
	"knode.io/knode/internal/imagegc"
	"knode.io/knode/internal/logrotation"
	"knode.io/knode/internal/metrics"
	"knode.io/knode/internal/migrate"
	"knode.io/knode/internal/nodeinfo"
	"knode.io/knode/internal/podresources"
	"knode.io/knode/internal/pods"
	"knode.io/knode/internal/podsecurity"
	"knode.io/knode/internal/podsource"
	"knode.io/knode/internal/podsupport"
	"knode.io/knode/internal/qos"
	"knode.io/knode/internal/restore"
	"knode.io/knode/internal/server"
	"knode.io/knode/internal/staticpod"
	"knode.io/knode/internal/stats"
	"knode.io/knode/internal/userns"
	"knode.io/knode/internal/version"
)

// runtimeHealth adapts the CRI health to what cluster status needs.
type runtimeHealth struct{ rt *cri.Runtime }

func (h runtimeHealth) RuntimeErr() error { return h.rt.Health().Err() }
func (h runtimeHealth) NetworkErr() error { return h.rt.Health().NetworkErr() }

// agent is what the steps of Run build, each step reading what earlier
// steps made. A new component goes in the step its data flows through.
type agent struct {
	cfg *config.Config
	log *slog.Logger
	// closers run when Run returns, last added first.
	closers []func()

	// start runtime
	endpoint string
	rt       *cri.Runtime
	metrics  *metrics.Metrics
	// node facts
	hostIP string
	memory int64
	// devices and pressure
	devices   *devicemanager.Manager
	evictions *eviction.Manager
	// budget and cgroups
	budget     nodeBudget
	podCgroups *qos.Cgroups
	// cluster (nil without --kubeconfig)
	node       *cluster.Node
	apiPods    *cluster.Pods
	onRemoved  func(types.UID)
	apiObjects pods.APIObjects
	// services feeds the pods' service environment (nil: none, as a
	// kubelet without an API server).
	services pods.Services
	// pullSecrets reads image pull secrets (nil interface without a cluster).
	pullSecrets pods.PullSecrets
	// runtimeClasses resolves RuntimeClasses (nil interface without a cluster).
	runtimeClasses pods.RuntimeClasses
	events         pods.EventRecorder
	// workers
	mgr   *pods.Manager
	usage *stats.Collector
	// servers
	srv *server.Server
}

// step is one named stage of Run.
type step struct {
	name string
	run  func(context.Context) error
}

// Run starts the agent and blocks until ctx ends. Pods keep running after
// it returns; a restarted knode adopts them. The steps run in the order
// data flows: config → runtime connection → pod sources → pod workers →
// runtime, with the servers asking the services the steps built.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	a := &agent{cfg: cfg, log: log}
	defer a.close()
	for _, s := range []step{
		{"start runtime", a.startRuntime},
		{"node facts", a.readNodeFacts},
		{"devices", a.startDevices},
		{"pressure", a.watchPressure},
		{"budget", a.readBudget},
		{"cgroups", a.startCgroups},
		{"cluster", a.joinCluster},
		{"workers", a.startWorkers},
		{"housekeeping", a.startHousekeeping},
		{"servers", a.startServers},
		{"sources", a.startSources},
	} {
		if err := s.run(ctx); err != nil {
			return err
		}
	}
	return a.serve(ctx)
}

func (a *agent) onClose(f func()) { a.closers = append(a.closers, f) }

func (a *agent) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
}

// startRuntime connects to the CRI runtime, first starting the embedded
// containerd when no endpoint is configured.
func (a *agent) startRuntime(ctx context.Context) error {
	cfg, log := a.cfg, a.log
	// Searchable by others (the embedded containerd's state is beneath,
	// which pods in user namespaces must reach); nothing in it is listed.
	if err := os.MkdirAll(cfg.RootDir, 0o711); err != nil {
		return fmt.Errorf("create root dir: %w", err)
	}
	// The pods' directories are not: they hold Secret volumes and whatever
	// a container wrote in its emptyDir (a set-user-ID root program
	// included), and any host user reads pod UIDs in /proc/<pid>/cgroup.
	// Root only, as the kubelet's 0750, set again on a directory an older
	// knode made 0755.
	podsDir := filepath.Join(cfg.RootDir, "pods")
	if err := os.MkdirAll(podsDir, 0o750); err != nil {
		return fmt.Errorf("create pods dir: %w", err)
	}
	if err := os.Chmod(podsDir, 0o750); err != nil {
		return fmt.Errorf("pods dir: %w", err)
	}
	a.endpoint = cfg.ContainerRuntimeEndpoint
	if a.endpoint == "" {
		sup, err := startEmbedded(ctx, cfg, log)
		if err != nil {
			return err
		}
		a.onClose(func() { sup.Stop(30 * time.Second) })
		a.endpoint = sup.Endpoint()
	}
	rt, err := cri.Connect(ctx, log, a.endpoint, cfg.RuntimeRequestTimeout)
	if err != nil {
		return err
	}
	a.rt = rt
	a.metrics = metrics.New()
	rt.Instrument(a.metrics.ObserveRuntimeOperation)
	a.onClose(func() { rt.Close(context.Background()) })
	log.Info("container runtime", "runtime", rt.Description(), "endpoint", a.endpoint)
	// Once now, so that the handlers' features are known before any pod
	// needs them; Watch logs a failure.
	_ = rt.Health().Check(ctx)
	go rt.Health().Watch(ctx, log, 5*time.Second)
	return nil
}

// readNodeFacts reads what pods and the node status report about this machine.
func (a *agent) readNodeFacts(context.Context) error {
	a.hostIP = a.cfg.NodeIP
	if a.hostIP == "" {
		ip, err := nodeinfo.HostIP()
		if err != nil {
			return err
		}
		a.hostIP = ip
	}
	memory, err := nodeinfo.MemoryBytes()
	if err != nil {
		return err
	}
	a.memory = memory
	return nil
}

// startDevices serves the device plugin registration socket.
func (a *agent) startDevices(ctx context.Context) error {
	dm, err := devicemanager.New(devicemanager.Options{
		Dir:         filepath.Join(a.cfg.RootDir, "device-plugins"),
		GracePeriod: a.cfg.DevicePluginGracePeriod,
		CallTimeout: a.cfg.DevicePluginCallTimeout,
		Observer:    a.metrics,
		Log:         a.log.With("component", "devices"),
	})
	if err != nil {
		return err
	}
	if err := dm.Start(ctx); err != nil {
		return err
	}
	a.devices = dm
	return nil
}

// watchPressure sets up the eviction thresholds; the node status reports
// the pressure and the eviction loop (housekeeping) acts on it.
func (a *agent) watchPressure(context.Context) error {
	thresholds, err := eviction.ParseMap(a.cfg.EvictionHard)
	if err != nil {
		return err
	}
	if ignored := eviction.Ignored(a.cfg.EvictionHard); len(ignored) > 0 {
		a.log.Warn("eviction thresholds on signals knode does not measure are ignored", "signals", ignored)
	}
	a.evictions = eviction.New(thresholds, a.cfg.RootDir, a.log.With("component", "eviction")).WithPodLogs(a.cfg.PodLogsDir)
	return nil
}

// joinCluster (cluster mode): the Node, and the pods the scheduler bound
// to it. Its loops start with the sources, once the workers exist.
func (a *agent) joinCluster(ctx context.Context) error {
	cfg := a.cfg
	if cfg.Kubeconfig == "" {
		return nil
	}
	node, err := cluster.New(cluster.Config{
		Kubeconfig: cfg.Kubeconfig,
		Facts: cluster.Facts{
			NodeName: cfg.NodeName, Labels: cfg.NodeLabels, HostIP: a.hostIP, Hostname: cfg.NodeName,
			RuntimeVersion: a.rt.Description(), KubeletVersion: version.Version,
			KernelVersion: nodeinfo.KernelRelease(), OSImage: nodeinfo.OSImage(),
			Port: cfg.Port,
		},
		Health:    runtimeHealth{a.rt},
		Handlers:  a.rt.Health().RuntimeHandlers,
		Pressure:  a.evictions,
		Resources: a.nodeResources,
		Requests:  a.metrics,
		Log:       a.log.With("component", "cluster"),
	})
	if err != nil {
		return err
	}
	a.node = node
	a.apiPods = node.NewPods()
	a.onRemoved = a.apiPods.Removed
	a.apiObjects = node
	a.runtimeClasses = node.NewRuntimeClasses()
	// Started now, so that the first list is in before API pods start (the
	// kubelet does not build their env until it is).
	services := node.NewServices()
	go services.Run(ctx)
	a.services = services
	a.pullSecrets = node
	clusterEvents := node.NewEvents()
	go clusterEvents.Run(ctx)
	a.events = clusterEvents
	return nil
}

// startWorkers builds the pod workers and what they ask: restore selection.
// They run from serve, with the API.
func (a *agent) startWorkers(context.Context) error {
	cfg, rt := a.cfg, a.rt
	restoreDir := filepath.Join(cfg.RootDir, "restore")
	if err := os.MkdirAll(restoreDir, 0o700); err != nil {
		return fmt.Errorf("create restore dir: %w", err)
	}
	restores := &restore.Selector{
		Dirs:             append([]string{filepath.Join(cfg.RootDir, "checkpoints"), restoreDir}, cfg.RestoreDirs...),
		Runtime:          rt.Description(),
		AcrossNamespaces: cfg.RestoreAcrossNamespaces,
		APIPods:          cfg.FeatureGates.Enabled(config.ContainerCheckpoint),
		Log:              a.log.With("component", "restore"),
	}
	sec, err := a.securityAdmission()
	if err != nil {
		return err
	}
	// As the kubelet, ranges recorded in the pods' directories are taken
	// back before any pod runs, and a file that cannot be read stops knode.
	usernsMgr, err := userns.New(userns.Options{PodsDir: filepath.Join(cfg.RootDir, "pods"), MaxPods: int(cfg.MaxPods),
		IDsPerPod: uint32(cfg.UserNamespacesIDsPerPod),
		Handlers:  rt.Health().RuntimeHandlers})
	if err != nil {
		return fmt.Errorf("user namespaces: %w", err)
	}
	// The sources the workers wait for before they remove pods they do not know.
	var sources []string
	if cfg.PodManifestPath != "" {
		sources = append(sources, podsource.File)
	}
	if a.node != nil {
		sources = append(sources, podsource.API)
	}
	a.mgr, err = pods.NewManager(pods.Options{
		Runtime:          rt,
		Images:           rt,
		RuntimeName:      rt.Name(),
		RootDir:          cfg.RootDir,
		PodLogsDir:       cfg.PodLogsDir,
		CgroupRoot:       cfg.CgroupRoot,
		ResolvConf:       cfg.ResolvConf,
		ClusterDomain:    cfg.ClusterDomain,
		ClusterDNS:       cfg.ClusterDNS,
		HostIP:           a.hostIP,
		NodeName:         cfg.NodeName,
		NodeCPUs:         nodeinfo.CPUs(),
		NodeMemoryBytes:  a.memory,
		ResyncPeriod:     cfg.SyncFrequency,
		RequestTimeout:   cfg.RuntimeRequestTimeout,
		Log:              a.log.With("component", "pods"),
		Recorder:         a.metrics,
		Devices:          a.devices,
		ContainerLogsDir: cfg.ContainerLogsDir,
		Restores:         restores,
		OnRemoved:        a.onRemoved,
		APIObjects:       a.apiObjects,
		Services:         a.services,
		PullSecrets:      a.pullSecrets,
		RuntimeClasses:   a.runtimeClasses,
		Events:           a.events,
		Pressure:         a.evictions,
		Cgroups:          a.podCgroups,
		Admission:        admission.Chain{sec.sysctls, sec.fields, a.admission(), sec.appArmor, sec.runtime},
		Allocatable: func() v1.ResourceList {
			_, alloc := a.nodeResources()
			return alloc
		},
		Security: crispec.Security{SeccompDefault: cfg.SeccompDefault, SeccompProfileRoot: filepath.Join(cfg.RootDir, "seccomp"),
			HostMaskedPaths: nodeinfo.ThermalThrottlePaths()},
		UserNamespaces: usernsMgr,
	}, sources...)
	if err != nil {
		return err
	}
	a.metrics.AddRunning(a.mgr)
	a.metrics.AddDockershimDependents(a.mgr.DockershimDependentPods)
	return nil
}

// securityAdmitters are the admit handlers of what the node cannot
// enforce, with the kubelet's reasons, and of the fields knode does not
// implement. The chain runs them where the kubelet runs its own: sysctls
// before the resource predicates, AppArmor and runtime features after.
// The unimplemented fields, knode's own, come before the predicates: a
// critical pod knode would refuse for them must not preempt others first.
type securityAdmitters struct {
	sysctls, appArmor, runtime, fields admission.Handler
}

func (a *agent) securityAdmission() (securityAdmitters, error) {
	cfg := a.cfg
	sysctls, err := podsecurity.NewAllowlist(append(podsecurity.SafeSysctls(nodeinfo.KernelRelease()), cfg.AllowedUnsafeSysctls...))
	if err != nil {
		return securityAdmitters{}, fmt.Errorf("--allowed-unsafe-sysctls: %w", err)
	}
	runtime := podsecurity.Runtime{Status: a.rt, Timeout: cfg.RuntimeRequestTimeout}
	return securityAdmitters{
		sysctls:  podsupport.AdmitWith(sysctls.Admit),
		appArmor: podsupport.AdmitWith(podsecurity.AppArmor(nodeinfo.AppArmorEnabled())),
		runtime:  podsupport.AdmitWith(runtime.Admit),
		fields:   podsupport.AdmitWith(podsupport.Check),
	}, nil
}

// startHousekeeping runs what keeps the node's disks and memory in bounds:
// log rotation, image garbage collection, usage stats and evictions.
func (a *agent) startHousekeeping(ctx context.Context) error {
	cfg, rt, log := a.cfg, a.rt, a.log
	rotator, err := logrotation.New(logrotation.Options{Runtime: rt, Selector: pods.OwnerSelector(cfg.NodeName),
		MaxSize: cfg.ContainerLogMaxSize, MaxFiles: cfg.ContainerLogMaxFiles, RequestTimeout: cfg.RuntimeRequestTimeout,
		Log: log.With("component", "log-rotation")})
	if err != nil {
		return err
	}
	go rotator.Run(ctx)
	imageGC, err := imagegc.New(rt, rt, imagegc.StatFS, imagegc.Policy{
		HighThresholdPercent: cfg.ImageGCHighThreshold, LowThresholdPercent: cfg.ImageGCLowThreshold,
		MinAge: cfg.ImageMinimumGCAge, Period: cfg.ImageGCPeriod,
	}, cfg.RuntimeRequestTimeout, log.With("component", "image-gc"))
	if err != nil {
		return err
	}
	go imageGC.Run(ctx)

	a.usage = stats.NewCollector(stats.Options{Runtime: rt, Selector: pods.OwnerSelector(cfg.NodeName), Timeout: cfg.RuntimeRequestTimeout,
		NodeName: cfg.NodeName, RootDir: cfg.RootDir})
	go a.evictions.Run(ctx, a.mgr, a.usage)
	return nil
}

// startServers builds the HTTPS API (it serves from serve) and serves the
// pod resources socket.
func (a *agent) startServers(ctx context.Context) error {
	var peerNodes migrate.NodeEndpoints // cluster mode: POST /restores trusts the Nodes
	if a.node != nil {
		peerNodes = a.node
	}
	srv, err := newServer(ctx, a.cfg, a.rt, a.mgr, a.devices, a.metrics, a.usage, peerNodes, a.log)
	if err != nil {
		return err
	}
	a.srv = srv
	go func() {
		socket := filepath.Join(a.cfg.RootDir, "pod-resources", "kubelet.sock")
		if err := podresources.Serve(ctx, socket, a.mgr, a.devices, a.log.With("component", "podresources")); err != nil {
			a.log.Error("pod resources API stopped", "err", err)
		}
	}()
	return nil
}

// startSources starts the pod sources, which push pods into the workers:
// the manifest directory, and in cluster mode the API server (with the
// Node's own loops).
func (a *agent) startSources(ctx context.Context) error {
	cfg, log := a.cfg, a.log
	if cfg.PodManifestPath != "" {
		src := staticpod.NewSource(cfg.PodManifestPath, cfg.NodeName, cfg.FileCheckFrequency, log.With("component", "static-pods"))
		go func() {
			if err := src.Run(ctx, a.mgr); err != nil {
				log.Error("static pod source stopped", "err", err)
			}
		}()
	}
	log.Info("knode is running", "node", cfg.NodeName, "rootDir", cfg.RootDir, "manifests", cfg.PodManifestPath)
	if a.node != nil {
		go a.node.Run(ctx)
		go a.apiPods.Run(ctx, a.mgr, a.mgr)
	}
	return nil
}

// serve runs the API and the pod workers until ctx ends or the API cannot serve.
func (a *agent) serve(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	serveErr := make(chan error, 1)
	go func() { serveErr <- a.srv.Serve(runCtx) }()
	mgrDone := make(chan struct{})
	go func() {
		a.mgr.Run(runCtx)
		close(mgrDone)
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	cancel()
	<-mgrDone
	if err != nil {
		return err
	}
	a.log.Info("knode stopped; pods keep running in the runtime")
	return nil
}

func startEmbedded(ctx context.Context, cfg *config.Config, log *slog.Logger) (*containerd.Supervisor, error) {
	layout := containerd.Layout{Dir: filepath.Join(cfg.RootDir, "containerd")}
	sup, err := containerd.Start(ctx, containerd.Options{
		Layout: layout,
		Settings: containerd.Settings{
			SandboxImage: cfg.PodInfraContainerImage,
			PodCIDR:      cfg.PodCIDR,
			CNIBinDirs:   []string{"/usr/lib/cni", "/opt/cni/bin"},
			CDISpecDirs:  []string{"/etc/cdi", "/var/run/cdi"},
			// containerd 2.1–2.3 restore checkpoint archives given as an image; 2.4 ignores the key.
			EnableRestore: true,
		},
		Log: log.With("component", "containerd"),
	})
	if err != nil {
		return nil, err
	}
	if cfg.PreloadImagesDir != "" {
		imported, err := containerd.ImportArchives(ctx, sup.Binary(), layout.Socket(), cfg.PreloadImagesDir)
		if err != nil {
			sup.Stop(10 * time.Second)
			return nil, err
		}
		log.Info("imported image archives", "archives", imported)
	}
	return sup, nil
}
