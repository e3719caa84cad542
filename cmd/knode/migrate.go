package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"knode.io/knode/internal/client"
	"knode.io/knode/internal/migrate"
)

func newMigrateCommand() *cobra.Command {
	opts := &client.Options{}
	var to, name string
	var stopSource bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "migrate NAMESPACE/POD CONTAINER --server https://SOURCE:10250 --to https://DEST:10250",
		Short: "Move a running container to another node: checkpoint, transfer, restore, and optionally stop the original",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, pod := splitPodRef(args[0])
			container := args[1]
			if name == "" {
				name = container + "-migrated"
			}
			// The destination makes a file name of it: say so here, before the checkpoint.
			if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
				return fmt.Errorf("pod name %q (give one with --name): %s", name, strings.Join(msgs, "; "))
			}
			if to == "" {
				return fmt.Errorf("--to https://<destination node>:10250 is required")
			}
			src, err := client.New(*opts)
			if err != nil {
				return err
			}
			dstOpts := *opts
			dstOpts.Server = to
			dst, err := client.New(dstOpts)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			step := func(what string, start time.Time) {
				fmt.Fprintf(out, "%-40s %6.2fs\n", what, time.Since(start).Seconds())
			}

			// 1. Checkpoint on the source; the original keeps running.
			start := time.Now()
			resp, err := src.Do(ctx, http.MethodPost, "/checkpoint/"+url.PathEscape(ns)+"/"+url.PathEscape(pod)+"/"+url.PathEscape(container), nil)
			if err != nil {
				return fmt.Errorf("checkpoint on the source failed; nothing changed: %w", err)
			}
			var answer struct{ Items []string }
			err = json.NewDecoder(resp.Body).Decode(&answer)
			resp.Body.Close()
			if err != nil || len(answer.Items) != 1 {
				return fmt.Errorf("checkpoint on the source: unexpected answer: %v", err)
			}
			archive := filepath.Base(answer.Items[0])
			step("checkpoint on "+opts.Server, start)

			// 2. The destination pulls the archive from the source and writes the pod.
			start = time.Now()
			body, _ := json.Marshal(migrate.ReceiveRequest{Source: strings.TrimSuffix(opts.Server, "/") + "/checkpoints/" + archive, Name: name, Namespace: ns})
			res, err := postJSON(ctx, dst, "/restores", body)
			if err != nil {
				return fmt.Errorf("transfer to the destination failed; the source keeps running: %w", err)
			}
			step("transfer to "+to, start)

			// 3. Wait for the restored pod to run there.
			start = time.Now()
			if err := waitRunning(ctx, dst, res.Namespace, res.Pod, wait); err != nil {
				if uerr := deleteRestore(ctx, dst, name); uerr != nil {
					err = fmt.Errorf("%w (and undoing it failed: %v)", err, uerr)
				}
				return fmt.Errorf("restore on the destination failed and was undone; the source keeps running: %w", err)
			}
			step("restore on "+to+" ("+res.Namespace+"/"+res.Pod+")", start)

			// 4. Only now, if asked: stop the original.
			if stopSource {
				start = time.Now()
				resp, err := src.Do(ctx, http.MethodPost, "/pods/"+url.PathEscape(ns)+"/"+url.PathEscape(pod)+"/stop", nil)
				if err != nil {
					return fmt.Errorf("the container runs on the destination, but stopping the source failed: %w", err)
				}
				resp.Body.Close()
				step("stop the original on "+opts.Server, start)
			}
			return nil
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&to, "to", "", "the destination node's API, https://NODE:10250")
	cmd.Flags().StringVar(&name, "name", "", "name of the pod on the destination (default <container>-migrated)")
	cmd.Flags().BoolVar(&stopSource, "stop-source", false, "stop the original once the restored container runs")
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the restored container to run")
	return cmd
}

func postJSON(ctx context.Context, c *client.Client, path string, body []byte) (*migrate.ReceiveResult, error) {
	resp, err := c.DoBody(ctx, http.MethodPost, path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var res migrate.ReceiveResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&res); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	return &res, nil
}

func deleteRestore(ctx context.Context, c *client.Client, name string) error {
	resp, err := c.Do(ctx, http.MethodDelete, "/restores/"+url.PathEscape(name), nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// waitRunning polls /pods until the pod's containers all run, or it fails.
func waitRunning(ctx context.Context, c *client.Client, ns, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		list, err := c.Pods(ctx)
		if err == nil {
			for _, p := range list.Items {
				if p.Namespace != ns || p.Name != name {
					continue
				}
				if p.Status.Phase == v1.PodFailed {
					return fmt.Errorf("pod %s/%s failed: %s: %s", ns, name, p.Status.Reason, p.Status.Message)
				}
				running := len(p.Status.ContainerStatuses) > 0
				for _, cs := range p.Status.ContainerStatuses {
					running = running && cs.State.Running != nil
				}
				if running {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("pod %s/%s did not run within %s", ns, name, timeout)
}
