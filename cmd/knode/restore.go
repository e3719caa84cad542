package main

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/util/validation"

	"knode.io/knode/internal/checkpoint/format"
	"knode.io/knode/internal/client"
	"knode.io/knode/internal/migrate"
)

func newRestoreCommand() *cobra.Command {
	opts := &client.Options{}
	var from, restoreDir, manifestDir, manifestFile, podName, namespace string
	cmd := &cobra.Command{
		Use:   "restore --from https://NODE:10250/checkpoints/ARCHIVE",
		Short: "Fetch a checkpoint archive from another node and write the static pod that resumes it here",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := url.Parse(from)
			if err != nil || u.Scheme != "https" || !strings.HasPrefix(u.Path, "/checkpoints/") {
				return fmt.Errorf("--from must be https://<node>:10250/checkpoints/<archive>")
			}
			name := path.Base(strings.TrimSuffix(u.Path, "/content"))
			if !format.ValidName(name) {
				return fmt.Errorf("%q is not a checkpoint archive name", name)
			}
			opts.Server = u.Scheme + "://" + u.Host
			c, err := client.New(*opts)
			if err != nil {
				return err
			}
			if restoreDir == "" {
				restoreDir = filepath.Join(opts.RootDir, "restore")
			}
			if err := os.MkdirAll(restoreDir, 0o700); err != nil {
				return err
			}
			start := time.Now()
			progress := progressBar(cmd.ErrOrStderr())
			archive, sum, err := c.Download(cmd.Context(), "/checkpoints/"+url.PathEscape(name)+"/content", restoreDir, name, progress)
			if err != nil {
				return err
			}
			format.RecordDigest(archive, sum)
			fmt.Fprintf(cmd.ErrOrStderr(), "fetched %s (sha256 %s) in %.1fs\n", archive, sum[:16], time.Since(start).Seconds())
			d, err := format.ReadDetails(archive)
			if err != nil {
				os.Remove(archive)
				return fmt.Errorf("%s: %w", archive, err)
			}
			if podName == "" {
				podName = d.ContainerName + "-restored"
			}
			// Names become file names: the archive's (which its source wrote)
			// as much as the operator's.
			if msgs := validation.IsDNS1123Label(podName); len(msgs) > 0 {
				os.Remove(archive)
				return fmt.Errorf("pod name %q (give one with --name): %s", podName, strings.Join(msgs, "; "))
			}
			if namespace != "" {
				if msgs := validation.IsDNS1123Label(namespace); len(msgs) > 0 {
					os.Remove(archive)
					return fmt.Errorf("namespace %q: %s", namespace, strings.Join(msgs, "; "))
				}
			}
			manifest, err := migrate.RestoreManifest(d, archive, podName, namespace)
			if err != nil {
				os.Remove(archive)
				return err
			}
			dir, file := manifestDir, podName+".json"
			if manifestFile != "" {
				dir, file = filepath.Dir(manifestFile), filepath.Base(manifestFile)
			} else if manifestDir == "" {
				fmt.Fprintln(cmd.OutOrStdout(), string(manifest))
				return nil
			}
			// Written beneath the directory, never through a link, never over a file.
			target, err := migrate.WriteNewFile(dir, file, manifest)
			if err != nil {
				os.Remove(archive)
				return fmt.Errorf("write the manifest: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), target)
			return nil
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&from, "from", "", "the archive on the source node: https://NODE:10250/checkpoints/ARCHIVE")
	cmd.Flags().StringVar(&restoreDir, "restore-dir", "", "where the archive goes (default <root-dir>/restore, which knode restores from)")
	cmd.Flags().StringVar(&manifestDir, "to", "", "static pod manifest directory to write the resuming pod into")
	cmd.Flags().StringVar(&manifestFile, "pod-manifest", "", "write the resuming pod to this file instead")
	cmd.Flags().StringVar(&podName, "name", "", "name of the resuming pod (default <container>-restored)")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the resuming pod (default: the original's)")
	return cmd
}

// progressBar draws a download bar on a terminal.
func progressBar(w any) func(done, total int64) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	last := time.Time{}
	return func(done, total int64) {
		if time.Since(last) < 100*time.Millisecond && done != total {
			return
		}
		last = time.Now()
		pct := 0
		if total > 0 {
			pct = int(done * 100 / total)
		}
		fmt.Fprintf(f, "\r[%-40s] %3d%% %s", strings.Repeat("=", pct*40/100), pct, humanBytes(done))
		if done == total {
			fmt.Fprintln(f)
		}
	}
}
