package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ginkgoReport is the part of ginkgo v2's JSON report the harness reads.
type ginkgoReport struct {
	PreRunStats struct{ TotalSpecs, SpecsThatWillRun int }
	SpecReports []struct {
		ContainerHierarchyTexts []string
		LeafNodeType            string
		LeafNodeText            string
		State                   string
		RunTime                 time.Duration
		Failure                 struct{ Message string }
	}
}

// specResult is one spec's outcome in summary.json.
type specResult struct {
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	Seconds int    `json:"seconds"`
}

// summary is <out>/<agent>/summary.json.
type summary struct {
	Agent    string                `json:"agent"`
	Date     string                `json:"date"`
	Wall     string                `json:"wall"`
	Selected int                   `json:"selected"`
	Passed   int                   `json:"passed"`
	Failed   int                   `json:"failed"`
	Skipped  int                   `json:"skipped"`
	Specs    map[string]specResult `json:"specs"`
}

func readReports(outDir string) ([]ginkgoReport, error) {
	files, err := filepath.Glob(filepath.Join(outDir, "report_*.json"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no ginkgo reports in %s", outDir)
	}
	var all []ginkgoReport
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var reports []ginkgoReport
		if err := json.Unmarshal(data, &reports); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		all = append(all, reports...)
	}
	return all, nil
}

// summarize counts the reports' specs and writes summary.json and
// summary.txt. Specs the focus filtered out are not counted; a spec the
// suite skipped at run time (it says why) is.
func summarize(outDir, agent string, wall time.Duration) (string, error) {
	reports, err := readReports(outDir)
	if err != nil {
		return "", err
	}
	s := summary{Agent: agent, Date: time.Now().UTC().Format(time.RFC3339), Wall: wall.Round(time.Second).String(), Specs: map[string]specResult{}}
	for _, r := range reports {
		s.Selected += r.PreRunStats.SpecsThatWillRun
		for _, sp := range r.SpecReports {
			if sp.LeafNodeType != "It" {
				continue
			}
			name := strings.Join(append(append([]string{}, sp.ContainerHierarchyTexts...), sp.LeafNodeText), " ")
			res := specResult{State: sp.State, Seconds: int(sp.RunTime.Seconds())}
			switch sp.State {
			case "passed":
				s.Passed++
			case "skipped", "pending":
				if sp.Failure.Message == "" {
					continue // not selected
				}
				s.Skipped++
				res.Message = firstLine(sp.Failure.Message)
			default:
				s.Failed++
				res.Message = firstLine(sp.Failure.Message)
			}
			s.Specs[name] = res
		}
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(outDir, "summary.json"), data, 0o644); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: selected %d, passed %d, failed %d, skipped %d (suite wall time %s)\n", agent, s.Selected, s.Passed, s.Failed, s.Skipped, s.Wall)
	for _, name := range sortedNames(s.Specs) {
		if r := s.Specs[name]; r.State != "passed" {
			fmt.Fprintf(&b, "  %s: %s\n      %s\n", r.State, name, r.Message)
		}
	}
	return b.String(), os.WriteFile(filepath.Join(outDir, "summary.txt"), []byte(b.String()), 0o644)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func sortedNames(m map[string]specResult) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func loadSummary(out, agent string) (summary, error) {
	var s summary
	data, err := os.ReadFile(filepath.Join(out, agent, "summary.json"))
	if err != nil {
		return s, fmt.Errorf("no %s results (run -agent %s first): %w", agent, agent, err)
	}
	return s, json.Unmarshal(data, &s)
}

// printComparison lists the specs that pass on the kubelet and not on
// knode, with knode's failure, then the converse.
func printComparison(w io.Writer, out string) error {
	kn, err := loadSummary(out, "knode")
	if err != nil {
		return err
	}
	kl, err := loadSummary(out, "kubelet")
	if err != nil {
		return err
	}
	for _, s := range []summary{kn, kl} {
		fmt.Fprintf(w, "%s (%s): selected %d, passed %d, failed %d, skipped %d, wall %s\n", s.Agent, s.Date, s.Selected, s.Passed, s.Failed, s.Skipped, s.Wall)
	}
	fmt.Fprintln(w, "\npass on the kubelet, not on knode:")
	for _, name := range sortedNames(kl.Specs) {
		if kl.Specs[name].State == "passed" && kn.Specs[name].State != "passed" {
			fmt.Fprintf(w, "- %s\n    knode: %s %s\n", name, kn.Specs[name].State, kn.Specs[name].Message)
		}
	}
	fmt.Fprintln(w, "\npass on knode, not on the kubelet:")
	for _, name := range sortedNames(kn.Specs) {
		if kn.Specs[name].State == "passed" && kl.Specs[name].State != "passed" {
			fmt.Fprintf(w, "- %s\n    kubelet: %s %s\n", name, kl.Specs[name].State, kl.Specs[name].Message)
		}
	}
	return nil
}

// dryRun lists what each phase selects, without a cluster.
func dryRun(ctx context.Context, t tools, o options, outDir string) error {
	phases := []phase{{name: "parallel", focus: o.focuses(), skip: skipParallel}}
	if o.serial && !o.subset && o.focus == "" {
		phases = append(phases, phase{name: "serial", focus: o.focuses(), label: "Serial || Disruptive", skip: serialSkip()})
	}
	for _, p := range phases {
		args := []string{"--ginkgo.dry-run", "--ginkgo.no-color", "--ginkgo.v", "--provider=skeleton",
			"--ginkgo.json-report=" + filepath.Join(outDir, "dry_"+p.name+".json")}
		for _, f := range p.focus {
			args = append(args, "--ginkgo.focus="+f)
		}
		if p.skip != "" {
			args = append(args, "--ginkgo.skip="+p.skip)
		}
		if p.label != "" {
			args = append(args, "--ginkgo.label-filter="+p.label)
		}
		cmd := exec.CommandContext(ctx, t.e2e, args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("dry run: %w: %s", err, out)
		}
		data, err := os.ReadFile(filepath.Join(outDir, "dry_"+p.name+".json"))
		if err != nil {
			return err
		}
		var reports []ginkgoReport
		if err := json.Unmarshal(data, &reports); err != nil {
			return err
		}
		for _, r := range reports {
			fmt.Printf("%s phase: %d specs\n", p.name, r.PreRunStats.SpecsThatWillRun)
			for _, sp := range r.SpecReports {
				if sp.LeafNodeType == "It" && sp.State == "passed" {
					fmt.Println("  " + strings.Join(append(append([]string{}, sp.ContainerHierarchyTexts...), sp.LeafNodeText), " "))
				}
			}
		}
	}
	return nil
}
