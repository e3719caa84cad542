package main

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"knode.io/knode/internal/checkpoint/retention"
	"knode.io/knode/internal/cluster"
	"knode.io/knode/internal/config"
	"knode.io/knode/internal/doctor"
)

// errProblems makes the exit status non-zero when a check found a problem.
type errProblems int

func (e errProblems) Error() string { return fmt.Sprintf("%d problem(s) found", int(e)) }

func newDoctorCommand() *cobra.Command {
	flags := &config.Flags{}
	var output string
	cmd := &cobra.Command{
		Use:       "doctor [runtime|dockershim|checkpoint|devices|node]",
		Short:     "Check that this node can run pods, checkpoint and host device plugins, and what still depends on Docker",
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: doctor.Areas,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := config.Load(cmd.Flags(), flags)
			if err != nil {
				return err
			}
			// The probes expect errors (a checkpoint of a container that does
			// not exist); the libraries' own logging of them is noise here.
			klog.SetLogger(logr.Discard())
			var boundPods func(context.Context) ([]v1.Pod, error)
			if cfg.Kubeconfig != "" {
				boundPods = func(ctx context.Context) ([]v1.Pod, error) {
					ctx, cancel := context.WithTimeout(ctx, cfg.RuntimeRequestTimeout)
					defer cancel()
					return cluster.BoundPods(ctx, cfg.Kubeconfig, cfg.NodeName)
				}
			}
			report, err := doctor.Run(cmd.Context(), doctor.Env{
				RootDir:        cfg.RootDir,
				ManifestDir:    cfg.PodManifestPath,
				PodLogsDir:     cfg.PodLogsDir,
				Endpoint:       cfg.ContainerRuntimeEndpoint,
				CheckpointGate: cfg.FeatureGates.Enabled(config.ContainerCheckpoint),
				Retention: retention.Policy{MaxPerContainer: cfg.CheckpointMaxPerContainer,
					MaxAge: cfg.CheckpointMaxAge, MaxTotalBytes: cfg.CheckpointMaxTotalBytes},
				RequestTimeout:   cfg.RuntimeRequestTimeout,
				KnownSockets:     doctor.DefaultKnownSockets,
				DockerConfig:     "/etc/docker/daemon.json",
				ContainerLogsDir: cfg.ContainerLogsDir,
				BoundPods:        boundPods,
			}, args...)
			if err != nil {
				return err
			}
			if output == "json" {
				if err := report.JSON(cmd.OutOrStdout()); err != nil {
					return err
				}
			} else {
				report.Print(cmd.OutOrStdout())
			}
			if n := report.Counts()[doctor.Problem]; n > 0 {
				cmd.SilenceErrors = output == "json"
				return errProblems(n)
			}
			return nil
		},
	}
	flags.AddFlags(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "", "json, or one line per check by default")
	return cmd
}
