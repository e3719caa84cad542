package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"knode.io/knode/internal/checkpoint"
	"knode.io/knode/internal/client"
)

func newCheckpointCommand() *cobra.Command {
	opts := &client.Options{}
	var timeout int64
	cmd := &cobra.Command{
		Use:   "checkpoint NAMESPACE/POD CONTAINER",
		Short: "Checkpoint a running container through a knode's API and print the archive path",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, pod := splitPodRef(args[0])
			c, err := client.New(*opts)
			if err != nil {
				return err
			}
			q := url.Values{}
			if timeout > 0 {
				q.Set("timeout", fmt.Sprint(timeout))
			}
			stop := showElapsed(cmd.ErrOrStderr(), "checkpointing "+ns+"/"+pod+"/"+args[1])
			resp, err := c.Do(cmd.Context(), http.MethodPost, "/checkpoint/"+url.PathEscape(ns)+"/"+url.PathEscape(pod)+"/"+url.PathEscape(args[1]), q)
			stop()
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var answer struct{ Items []string }
			if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
				return fmt.Errorf("decode answer: %w", err)
			}
			for _, p := range answer.Items {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			return nil
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.Flags().Int64Var(&timeout, "timeout", 0, "seconds the runtime may take (default: the runtime request timeout)")
	return cmd
}

// showElapsed prints a ticking elapsed time on a terminal until stop is called.
func showElapsed(w io.Writer, what string) (stop func()) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(w, "\r%s: done in %.1fs\n", what, time.Since(start).Seconds())
				return
			case <-t.C:
				fmt.Fprintf(w, "\r%s: %.1fs", what, time.Since(start).Seconds())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func newCheckpointsCommand() *cobra.Command {
	opts := &client.Options{}
	var output, namespace, pod, container string
	cmd := &cobra.Command{
		Use:   "checkpoints [ls|inspect ARCHIVE|rm ARCHIVE...]",
		Short: "List, inspect or delete the checkpoint archives of a running knode",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client.New(*opts)
			if err != nil {
				return err
			}
			verb := "ls"
			if len(args) > 0 {
				verb, args = args[0], args[1:]
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			switch verb {
			case "ls", "list":
				q := url.Values{}
				for k, v := range map[string]string{"namespace": namespace, "pod": pod, "container": container} {
					if v != "" {
						q.Set(k, v)
					}
				}
				var list struct{ Items []checkpoint.Archive }
				if err := c.GetJSON(ctx, "/checkpoints", q, &list); err != nil {
					return err
				}
				if output == "json" {
					return printJSON(out, list)
				}
				tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
				fmt.Fprintln(tw, "NAMESPACE\tPOD\tCONTAINER\tTIME\tSIZE\tARCHIVE")
				for _, a := range list.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Namespace, a.Pod, a.Container, a.Time.Format(time.RFC3339), humanBytes(a.Size), a.Name)
				}
				return tw.Flush()
			case "inspect", "show":
				if len(args) != 1 {
					return fmt.Errorf("inspect takes one archive name")
				}
				var d checkpoint.Details
				if err := c.GetJSON(ctx, "/checkpoints/"+url.PathEscape(args[0]), nil, &d); err != nil {
					return err
				}
				return printJSON(out, d)
			case "rm", "delete":
				if len(args) == 0 {
					return fmt.Errorf("rm takes one or more archive names")
				}
				for _, name := range args {
					if err := deleteArchive(ctx, c, name); err != nil {
						return err
					}
					fmt.Fprintln(out, "deleted", name)
				}
				return nil
			default:
				return fmt.Errorf("unknown action %q: use ls, inspect or rm", verb)
			}
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "", "json, or a table by default")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "only archives of this namespace")
	cmd.Flags().StringVar(&pod, "pod", "", "only archives of this pod")
	cmd.Flags().StringVar(&container, "container", "", "only archives of this container")
	return cmd
}

func deleteArchive(ctx context.Context, c *client.Client, name string) error {
	resp, err := c.Do(ctx, http.MethodDelete, "/checkpoints/"+url.PathEscape(name), nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
