package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"knode.io/knode/internal/client"
	"knode.io/knode/internal/devicemanager"
)

func newDevicesCommand() *cobra.Command {
	opts := &client.Options{}
	var output string
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "Show device-plugin resources: capacity, allocatable, device health and allocations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client.New(*opts)
			if err != nil {
				return err
			}
			var list struct{ Items []devicemanager.Resource }
			if err := c.GetJSON(cmd.Context(), "/devices", nil, &list); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				return printJSON(out, list)
			}
			tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "RESOURCE\tPLUGIN\tCAPACITY\tALLOCATABLE\tDEVICES\tALLOCATIONS")
			for _, r := range list.Items {
				plugin := r.Endpoint
				if !r.Connected {
					plugin = "(disconnected)"
				}
				if r.LastError != "" {
					plugin += " last error: " + r.LastError
				}
				var devs []string
				for _, d := range r.Devices {
					devs = append(devs, d.ID+"="+d.Health)
				}
				var allocs []string
				for _, a := range r.Allocations {
					allocs = append(allocs, a.PodUID+"/"+a.Container+":"+strings.Join(a.Devices, ","))
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", r.Name, plugin, r.Capacity, r.Allocatable, strings.Join(devs, " "), strings.Join(allocs, " "))
			}
			return tw.Flush()
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "", "json, or a table by default")
	return cmd
}
