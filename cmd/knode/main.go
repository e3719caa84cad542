// Command knode is a lean, kubelet-compatible Kubernetes node agent.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"

	"knode.io/knode/internal/agent"
	"knode.io/knode/internal/config"
	"knode.io/knode/internal/logging"
	"knode.io/knode/internal/version"
)

func main() {
	if err := newRootCommand().ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "knode:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "knode",
		Short:         "knode is a lean, kubelet-compatible Kubernetes node agent",
		Long:          "knode runs static pods on a CRI runtime, serves the kubelet's HTTPS API (with the checkpoint endpoint)\nand hosts device plugins, without the kubelet's weight.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	run := newRunCommand()
	root.AddCommand(run, newVersionCommand(), newGetCommand(), newLogsCommand(), newCheckpointCommand(), newCheckpointsCommand(), newDevicesCommand(), newDoctorCommand(), newRestoreCommand(), newMigrateCommand())
	// `knode --help` shows the agent's flags too: operators look for the
	// kubelet's flag names there first.
	defaultHelp := root.HelpFunc()
	root.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		defaultHelp(cmd, args)
		if cmd == root {
			fmt.Fprintf(cmd.OutOrStdout(), "\nFlags of `knode run` (the agent):\n%s", run.Flags().FlagUsages())
		}
	})
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print knode's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.String())
		},
	}
}

func newRunCommand() *cobra.Command {
	flags := &config.Flags{}
	var logLevel, logFormat string
	var verbosity int
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the node agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level, err := logging.ParseLevel(logLevel, verbosity)
			if err != nil {
				return err
			}
			log, err := logging.Setup(os.Stderr, level, logFormat, verbosity)
			if err != nil {
				return err
			}
			cfg, warnings, err := config.Load(cmd.Flags(), flags)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				log.Warn(w)
			}
			// A node agent's heap is small and steady: collect at 50% growth
			// (not Go's 100%) unless the operator set GOGC, for a smaller footprint.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(50)
			}
			if err := finerGRPCBuffers(); err != nil {
				return err
			}
			log.Info("starting knode", "version", version.Version, "featureGates", cfg.FeatureGates.Map())
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return agent.Run(ctx, cfg, log)
		},
	}
	flags.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&logLevel, "log-level", "", "debug, info, warn or error (default info)")
	cmd.Flags().IntVarP(&verbosity, "v", "v", 0, "log verbosity, as the kubelet's -v (0 = info, higher = more detail)")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}

// finerGRPCBuffers gives gRPC's process-wide buffer pool power-of-two
// tiers from 256 B to 1 MiB. Its default jumps from 32 KiB to 1 MiB, so a
// CreateContainer request of 33 KiB and more (a container whose env
// carries the 1,300 variables of 100 Services is about 48 KiB) took a
// 1 MiB buffer, kept in the pool over the next garbage collections: 1 MiB
// of live heap per such request (docs/benchmarks.md, cluster memory).
func finerGRPCBuffers() error {
	pool, err := mem.NewBinaryTieredBufferPool(8, 12, 14, 15, 16, 17, 18, 19, 20)
	if err != nil {
		return fmt.Errorf("gRPC buffer pool: %w", err)
	}
	experimental.SetDefaultBufferPool(pool)
	return nil
}

// splitPodRef reads NAMESPACE/POD, or POD in the default namespace, as kubectl does.
func splitPodRef(ref string) (namespace, pod string) {
	if ns, name, ok := strings.Cut(ref, "/"); ok {
		return ns, name
	}
	return "default", ref
}
