package main

import (
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"knode.io/knode/internal/client"
)

func newGetCommand() *cobra.Command {
	opts := &client.Options{}
	var output string
	cmd := &cobra.Command{
		Use:   "get pods",
		Short: "List the pods of a running knode, like kubectl get pods",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "pods" && args[0] != "pod" && args[0] != "po" {
				return fmt.Errorf("unknown resource %q: knode get knows pods", args[0])
			}
			c, err := client.New(*opts)
			if err != nil {
				return err
			}
			list, err := c.Pods(cmd.Context())
			if err != nil {
				return err
			}
			switch output {
			case "json":
				return printJSON(cmd.OutOrStdout(), list)
			case "", "wide":
				return client.PrintPods(cmd.OutOrStdout(), list.Items, time.Now())
			default:
				return fmt.Errorf("output format %q: want wide or json", output)
			}
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "", "json, or a table by default")
	return cmd
}

func newLogsCommand() *cobra.Command {
	opts := &client.Options{}
	var follow, previous, timestamps bool
	var tail int64
	cmd := &cobra.Command{
		Use:   "logs NAMESPACE/POD CONTAINER",
		Short: "Print (or follow) a container's log from a running knode",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, pod := splitPodRef(args[0])
			c, err := client.New(*opts)
			if err != nil {
				return err
			}
			q := url.Values{}
			if follow {
				q.Set("follow", "true")
			}
			if previous {
				q.Set("previous", "true")
			}
			if timestamps {
				q.Set("timestamps", "true")
			}
			if tail >= 0 {
				q.Set("tailLines", fmt.Sprint(tail))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return c.Logs(ctx, ns, pod, args[1], q, cmd.OutOrStdout())
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream new lines until interrupted or the container stops")
	cmd.Flags().BoolVarP(&previous, "previous", "p", false, "the previous (terminated) instance's log")
	cmd.Flags().BoolVar(&timestamps, "timestamps", false, "prefix each line with its timestamp")
	cmd.Flags().Int64Var(&tail, "tail", -1, "only the last N lines")
	return cmd
}
