package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"

	"knode.io/knode/internal/checkpoint"
	"knode.io/knode/internal/checkpoint/retention"
	"knode.io/knode/internal/client"
	"knode.io/knode/internal/cluster"
	"knode.io/knode/internal/config"
	"knode.io/knode/internal/cri"
	"knode.io/knode/internal/criu"
	"knode.io/knode/internal/devicemanager"
	"knode.io/knode/internal/metrics"
	"knode.io/knode/internal/migrate"
	"knode.io/knode/internal/pods"
	"knode.io/knode/internal/server"
	"knode.io/knode/internal/staticpod"
	"knode.io/knode/internal/stats"
)

// syncLoopStuckAfter is how long the relist loop may go without running
// before /healthz/syncloop fails (the kubelet's PLEG threshold).
const syncLoopStuckAfter = 3 * time.Minute

func newServer(ctx context.Context, cfg *config.Config, rt *cri.Runtime, mgr *pods.Manager, dm *devicemanager.Manager, m *metrics.Metrics, usage *stats.Collector, peerNodes migrate.NodeEndpoints, log *slog.Logger) (*server.Server, error) {
	pki := filepath.Join(cfg.RootDir, "pki")
	cert, err := server.ServingCertificate(cfg.TLSCertFile, cfg.TLSPrivateKeyFile, pki, cfg.NodeName)
	if err != nil {
		return nil, err
	}
	caFile := cfg.ClientCAFile
	if caFile == "" {
		// No CA configured: trust a node-local one whose admin certificate
		// stays root-only under <root-dir>/pki, instead of opening anonymous access.
		if caFile, err = server.EnsureLocalClientCA(pki); err != nil {
			return nil, err
		}
	}
	cas, err := server.LoadClientCAs(caFile)
	if err != nil {
		return nil, err
	}
	// In cluster mode the API server answers TokenReviews and SubjectAccessReviews.
	var webhooks *cluster.Webhooks
	var token authenticator.Request
	var webhookAuthz server.Authorizer
	if cfg.Kubeconfig != "" {
		if webhooks, err = cluster.NewWebhooks(cfg.Kubeconfig, m); err != nil {
			return nil, err
		}
		webhookAuthz = webhooks
		if cfg.AuthenticationTokenWebhook {
			token = webhooks
		}
	}
	authz, err := server.NewAuthorizer(cfg.AuthorizationMode, webhookAuthz)
	if err != nil {
		return nil, err
	}
	rc, err := receiver(cfg, peerNodes, log)
	if err != nil {
		return nil, err
	}
	var checkpoints server.Checkpoints
	if cfg.FeatureGates.Enabled(config.ContainerCheckpoint) {
		svc, err := checkpoint.New(checkpoint.Options{
			Dir:            filepath.Join(cfg.RootDir, "checkpoints"),
			Runtime:        rt,
			Pods:           mgr,
			DefaultTimeout: cfg.RuntimeRequestTimeout,
			MaxParallel:    cfg.MaxParallelCheckpoints,
			Retention: retention.Policy{
				MaxPerContainer: cfg.CheckpointMaxPerContainer,
				MaxAge:          cfg.CheckpointMaxAge,
				MaxTotalBytes:   cfg.CheckpointMaxTotalBytes,
			},
			Diagnose: func(err error) string { return criu.Diagnosis(err, rt.Description()) },
			Deleted:  func(reason string) { m.CheckpointsDeleted.WithLabelValues(reason).Inc() },
			Log:      log.With("component", "checkpoint"),
		})
		if err != nil {
			return nil, err
		}
		go svc.Run(ctx)
		checkpoints = svc
	}
	return server.New(server.Config{
		NodeName:        cfg.NodeName,
		Address:         cfg.Address,
		Port:            cfg.Port,
		ReadOnlyPort:    cfg.ReadOnlyPort,
		TLS:             cert,
		Authenticator:   server.NewAuthenticator(server.AuthConfig{ClientCAs: cas, Token: token, Anonymous: cfg.AnonymousAuth}),
		Authorizer:      authz,
		Pods:            mgr,
		Logs:            rt,
		Streaming:       mgr,
		ResourceMetrics: usage.Registry(),
		Stats:           usage,
		Metrics:         m,
		Health: []server.HealthCheck{
			{Name: "runtime", Check: rt.Health().Err},
			{Name: "syncloop", Check: func() error {
				attempt, _, _ := mgr.SyncLoopHealth()
				if since := time.Since(attempt); since > syncLoopStuckAfter {
					return fmt.Errorf("the sync loop has not run for %s", since.Round(time.Second))
				}
				return nil
			}},
		},
		Checkpoints: checkpoints,
		Devices:     dm,
		Receiver:    rc,
		Stopper:     stopper(cfg, mgr),
		Configz:     func() any { return cfg.KubeletConfiguration(caFile) },
		Log:         log.With("component", "server"),
	}), nil
}

// receiver serves POST /restores: this node pulls an archive from a
// trusted peer with its peer credentials and runs the pod that resumes it.
func receiver(cfg *config.Config, peerNodes migrate.NodeEndpoints, log *slog.Logger) (server.Receiver, error) {
	peers, err := migrate.NewPeers(cfg.RestorePeers, peerNodes)
	if err != nil {
		return nil, err
	}
	r := &migrate.Receiver{
		RestoreDir:       filepath.Join(cfg.RootDir, "restore"),
		ManifestDir:      cfg.PodManifestPath,
		NodeName:         cfg.NodeName,
		Peers:            peers,
		AcrossNamespaces: cfg.RestoreAcrossNamespaces,
		MaxTotalBytes:    cfg.CheckpointMaxTotalBytes,
		Log:              log.With("component", "restore"),
	}
	if cfg.PeerClientCertificate != "" {
		r.Peer = &client.Options{CertFile: cfg.PeerClientCertificate, KeyFile: cfg.PeerClientKey,
			CAFile: cfg.PeerCertificateAuthority, RootDir: cfg.RootDir}
	}
	return r, nil
}

// stopper serves POST /pods/{ns}/{name}/stop for static pods.
func stopper(cfg *config.Config, mgr *pods.Manager) server.PodStopper {
	if cfg.PodManifestPath == "" {
		return nil
	}
	return &staticpod.Stopper{ManifestDir: cfg.PodManifestPath, StoppedDir: filepath.Join(cfg.RootDir, "stopped-manifests"), Pods: mgr}
}
