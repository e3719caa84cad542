package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// benchConformance puts knode and the kubelet side by side in the e2e
// conformance harness (test/conformance, issue 12): one after the other on
// the same machine, cluster configuration and images, each runs the suite
// (the CI subset by default, the whole selection with -full), then starts
// pods one by one through the API. The harness measures; this prints both
// agents' figures next to each other.
func benchConformance(args []string) error {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	full := fs.Bool("full", false, "run the whole selection (about an hour per agent) instead of the CI subset")
	pods := fs.Int("pods", 20, "pods started one after another after the suite")
	out := fs.String("out", "_output/bench-conformance", "the harness's reports go to <out>/<agent>/")
	run := fs.String("run", "knode,kubelet", "agents to run now; the table takes the others' figures from <out> (an earlier run)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The harness's figures.json (test/conformance/figures.go) and
	// summary.json, the fields shown.
	type result struct {
		Agent, SuiteWall, PodStartP50, PodStartP95 string
		RSSPeakKiB, RSSMedianKiB, RSSWithPodsKiB   int
		RequestsPerPodStart, IdleRequestsPerSec    float64
		RequestsByMethod                           map[string]float64
		Selected, Passed                           int
	}
	var results []result
	for _, agent := range []string{"knode", "kubelet"} {
		if !strings.Contains(","+*run+",", ","+agent+",") {
			results = append(results, result{})
			if err := readResult(*out, agent, &results[len(results)-1]); err != nil {
				return fmt.Errorf("%s not run now and no earlier figures: %w", agent, err)
			}
			continue
		}
		cmdArgs := []string{"run", "./test/conformance", "-agent", agent, "-out", *out, "-figures", strconv.Itoa(*pods)}
		if !*full {
			cmdArgs = append(cmdArgs, "-subset")
		}
		cmd := exec.Command("go", cmdArgs...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("harness with %s: %w", agent, err)
		}
		results = append(results, result{})
		if err := readResult(*out, agent, &results[len(results)-1]); err != nil {
			return err
		}
	}
	suite := "the CI subset"
	if *full {
		suite = "the whole selection"
	}
	fmt.Printf("| figure | %s | %s |\n|---|---|---|\n", results[0].Agent, results[1].Agent)
	row := func(name string, f func(r result) string) {
		fmt.Printf("| %s | %s | %s |\n", name, f(results[0]), f(results[1]))
	}
	row("suite ("+suite+"): passed / selected", func(r result) string { return fmt.Sprintf("%d / %d", r.Passed, r.Selected) })
	row("suite wall time", func(r result) string { return r.SuiteWall })
	row(fmt.Sprintf("API-visible pod start p50 (%d pods, create → Running in a watch)", *pods), func(r result) string { return r.PodStartP50 })
	row("API-visible pod start p95", func(r result) string { return r.PodStartP95 })
	row("agent's API requests per pod start (idle rate subtracted)", func(r result) string { return fmt.Sprintf("%.1f", r.RequestsPerPodStart) })
	row("agent's API requests idle, per second", func(r result) string { return fmt.Sprintf("%.2f", r.IdleRequestsPerSec) })
	row("agent's RSS during the suite: peak / median", func(r result) string {
		return fmt.Sprintf("%.1f / %.1f MiB", float64(r.RSSPeakKiB)/1024, float64(r.RSSMedianKiB)/1024)
	})
	row(fmt.Sprintf("agent's RSS with the %d pods running", *pods), func(r result) string { return fmt.Sprintf("%.1f MiB", float64(r.RSSWithPodsKiB)/1024) })
	for _, r := range results {
		fmt.Printf("%s requests during the pod starts, by method: %v\n", r.Agent, r.RequestsByMethod)
	}
	return nil
}

// readResult reads one agent's figures.json and summary.json; v's fields
// take both (encoding/json matches names without regard to case).
func readResult(out, agent string, v any) error {
	if err := readJSON(filepath.Join(out, agent, "figures.json"), v); err != nil {
		return err
	}
	return readJSON(filepath.Join(out, agent, "summary.json"), v)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
