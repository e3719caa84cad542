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

	"k8s.io/apimachinery/pkg/types"

	"knode.io/knode/internal/cluster"
	"knode.io/knode/internal/config"
	"knode.io/knode/internal/containerd"
	"knode.io/knode/internal/cri"
	"knode.io/knode/internal/devicemanager"
	"knode.io/knode/internal/eviction"
	"knode.io/knode/internal/imagegc"
	"knode.io/knode/internal/logrotation"
	"knode.io/knode/internal/metrics"
	"knode.io/knode/internal/migrate"
	"knode.io/knode/internal/nodeinfo"
	"knode.io/knode/internal/podresources"
	"knode.io/knode/internal/pods"
	"knode.io/knode/internal/podsource"
	"knode.io/knode/internal/restore"
	"knode.io/knode/internal/staticpod"
	"knode.io/knode/internal/stats"
	"knode.io/knode/internal/version"
)

// runtimeHealth adapts the CRI health to what cluster status needs.
type runtimeHealth struct{ rt *cri.Runtime }

func (h runtimeHealth) RuntimeErr() error { return h.rt.Health().Err() }
func (h runtimeHealth) NetworkErr() error { return h.rt.Health().NetworkErr() }

// Run starts the agent and blocks until ctx ends. Pods keep running after
// it returns; a restarted knode adopts them.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.RootDir, 0o700); err != nil {
		return fmt.Errorf("create root dir: %w", err)
	}
	endpoint := cfg.ContainerRuntimeEndpoint
	if endpoint == "" {
		sup, err := startEmbedded(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer sup.Stop(30 * time.Second)
		endpoint = sup.Endpoint()
	}
	rt, err := cri.Connect(ctx, log, endpoint, cfg.RuntimeRequestTimeout)
	if err != nil {
		return err
	}
	m := metrics.New()
	rt.Instrument(m.ObserveRuntimeOperation)
	defer rt.Close(context.Background())
	log.Info("container runtime", "runtime", rt.Description(), "endpoint", endpoint)
	go rt.Health().Watch(ctx, log, 5*time.Second)

	hostIP := cfg.NodeIP
	if hostIP == "" {
		if hostIP, err = nodeinfo.HostIP(); err != nil {
			return err
		}
	}
	memory, err := nodeinfo.MemoryBytes()
	if err != nil {
		return err
	}
	dm, err := devicemanager.New(devicemanager.Options{
		Dir:         filepath.Join(cfg.RootDir, "device-plugins"),
		GracePeriod: cfg.DevicePluginGracePeriod,
		CallTimeout: cfg.DevicePluginCallTimeout,
		Observer:    m,
		Log:         log.With("component", "devices"),
	})
	if err != nil {
		return err
	}
	if err := dm.Start(ctx); err != nil {
		return err
	}
	restoreDir := filepath.Join(cfg.RootDir, "restore")
	if err := os.MkdirAll(restoreDir, 0o700); err != nil {
		return fmt.Errorf("create restore dir: %w", err)
	}
	restores := &restore.Selector{
		Dirs:             append([]string{filepath.Join(cfg.RootDir, "checkpoints"), restoreDir}, cfg.RestoreDirs...),
		Runtime:          rt.Description(),
		AcrossNamespaces: cfg.RestoreAcrossNamespaces,
		APIPods:          cfg.FeatureGates.Enabled(config.ContainerCheckpoint),
		Log:              log.With("component", "restore"),
	}
	var sources []string
	if cfg.PodManifestPath != "" {
		sources = append(sources, podsource.File)
	}
	thresholds, err := eviction.ParseMap(cfg.EvictionHard)
	if err != nil {
		return err
	}
	if ignored := eviction.Ignored(cfg.EvictionHard); len(ignored) > 0 {
		log.Warn("eviction thresholds on signals knode does not measure are ignored", "signals", ignored)
	}
	evictions := eviction.New(thresholds, cfg.RootDir, log.With("component", "eviction"))
	// Cluster mode: the node, and the pods the scheduler bound to it.
	var node *cluster.Node
	var apiPods *cluster.Pods
	var onRemoved func(types.UID)
	var apiObjects pods.APIObjects
	var events pods.EventRecorder
	if cfg.Kubeconfig != "" {
		node, err = cluster.New(cluster.Config{
			Kubeconfig: cfg.Kubeconfig,
			Facts: cluster.Facts{
				NodeName: cfg.NodeName, Labels: cfg.NodeLabels, HostIP: hostIP, Hostname: cfg.NodeName,
				RuntimeVersion: rt.Description(), KubeletVersion: version.Version,
				KernelVersion: nodeinfo.KernelRelease(), OSImage: nodeinfo.OSImage(),
				CPUs: nodeinfo.CPUs(), MemoryBytes: memory, MaxPods: 110, Port: cfg.Port,
			},
			Health:   runtimeHealth{rt},
			Pressure: evictions,
			Devices:  dm,
			Requests: m,
			Log:      log.With("component", "cluster"),
		})
		if err != nil {
			return err
		}
		apiPods = node.NewPods()
		onRemoved = apiPods.Removed
		apiObjects = node
		clusterEvents := node.NewEvents()
		go clusterEvents.Run(ctx)
		events = clusterEvents
		sources = append(sources, podsource.API)
	}
	mgr := pods.NewManager(pods.Options{
		Runtime:          rt,
		Images:           rt,
		RuntimeName:      rt.Name(),
		RootDir:          cfg.RootDir,
		PodLogsDir:       cfg.PodLogsDir,
		CgroupRoot:       cfg.CgroupRoot,
		ResolvConf:       cfg.ResolvConf,
		HostIP:           hostIP,
		NodeName:         cfg.NodeName,
		NodeCPUs:         nodeinfo.CPUs(),
		NodeMemoryBytes:  memory,
		ResyncPeriod:     cfg.SyncFrequency,
		RequestTimeout:   cfg.RuntimeRequestTimeout,
		Log:              log.With("component", "pods"),
		Recorder:         m,
		Devices:          dm,
		ContainerLogsDir: cfg.ContainerLogsDir,
		Restores:         restores,
		OnRemoved:        onRemoved,
		APIObjects:       apiObjects,
		Events:           events,
		Pressure:         evictions,
	}, sources...)
	m.AddRunning(mgr)
	m.AddDockershimDependents(mgr.DockershimDependentPods)
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

	usage := stats.NewCollector(stats.Options{Runtime: rt, Selector: pods.OwnerSelector(cfg.NodeName), Timeout: cfg.RuntimeRequestTimeout,
		NodeName: cfg.NodeName, RootDir: cfg.RootDir})
	go evictions.Run(ctx, mgr, usage)
	var peerNodes migrate.NodeEndpoints // cluster mode: POST /restores trusts the Nodes
	if node != nil {
		peerNodes = node
	}
	srv, err := newServer(ctx, cfg, rt, mgr, dm, m, usage, peerNodes, log)
	if err != nil {
		return err
	}
	go func() {
		socket := filepath.Join(cfg.RootDir, "pod-resources", "kubelet.sock")
		if err := podresources.Serve(ctx, socket, mgr, dm, log.With("component", "podresources")); err != nil {
			log.Error("pod resources API stopped", "err", err)
		}
	}()

	if cfg.PodManifestPath != "" {
		src := staticpod.NewSource(cfg.PodManifestPath, cfg.NodeName, cfg.FileCheckFrequency, log.With("component", "static-pods"))
		go func() {
			if err := src.Run(ctx, mgr); err != nil {
				log.Error("static pod source stopped", "err", err)
			}
		}()
	}
	log.Info("knode is running", "node", cfg.NodeName, "rootDir", cfg.RootDir, "manifests", cfg.PodManifestPath)
	if node != nil {
		go node.Run(ctx)
		go apiPods.Run(ctx, mgr, mgr)
	}
	// The API and the pod workers run until ctx ends or the API cannot serve.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(runCtx) }()
	mgrDone := make(chan struct{})
	go func() {
		mgr.Run(runCtx)
		close(mgrDone)
	}()
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	cancel()
	<-mgrDone
	if err != nil {
		return err
	}
	log.Info("knode stopped; pods keep running in the runtime")
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
