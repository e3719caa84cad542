// Package doctor checks whether a node can do what knode is asked to do —
// run pods on a CRI runtime, checkpoint, host device plugins — and what
// still depends on Docker, one line per check with what to do about it.
package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Status of one check.
type Status string

const (
	OK      Status = "ok"
	Warning Status = "warning"
	Problem Status = "problem"
)

// Result is one check's verdict.
type Result struct {
	Area    string `json:"area"`
	Check   string `json:"check"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Fix says what to do; empty for ok.
	Fix string `json:"fix,omitempty"`
}

// Areas in the order they run.
var Areas = []string{"runtime", "dockershim", "checkpoint", "devices", "node"}

// Report is every result of a run.
type Report struct {
	Results []Result `json:"results"`
}

func (r *Report) add(area, check string, status Status, msg, fix string) {
	r.Results = append(r.Results, Result{Area: area, Check: check, Status: status, Message: msg, Fix: fix})
}

func (r *Report) ok(area, check, msg string) { r.add(area, check, OK, msg, "") }
func (r *Report) warn(area, check, msg, fix string) {
	r.add(area, check, Warning, msg, fix)
}
func (r *Report) problem(area, check, msg, fix string) {
	r.add(area, check, Problem, msg, fix)
}

// Counts tallies results by status.
func (r *Report) Counts() map[Status]int {
	c := map[Status]int{}
	for _, res := range r.Results {
		c[res.Status]++
	}
	return c
}

// HasProblem is true when any check found a problem.
func (r *Report) HasProblem() bool { return r.Counts()[Problem] > 0 }

// Run runs the checks of the named areas (all when empty).
func Run(ctx context.Context, env Env, areas ...string) (*Report, error) {
	if len(areas) == 0 {
		areas = Areas
	}
	r := &Report{}
	for _, a := range areas {
		switch a {
		case "runtime":
			checkRuntime(ctx, env, r)
		case "dockershim":
			checkDockershim(ctx, env, r)
		case "checkpoint":
			checkCheckpoint(ctx, env, r)
		case "devices":
			checkDevices(env, r)
		case "node":
			checkNode(env, r)
		default:
			return nil, fmt.Errorf("unknown area %q: use one of %s", a, strings.Join(Areas, ", "))
		}
	}
	return r, nil
}

// Print writes one line per check and a summary.
func (r *Report) Print(w io.Writer) {
	for _, res := range r.Results {
		line := fmt.Sprintf("[%-7s] %-10s %-22s %s", res.Status, res.Area, res.Check, res.Message)
		if res.Fix != "" {
			line += "\n" + strings.Repeat(" ", 45) + "→ " + res.Fix
		}
		fmt.Fprintln(w, line)
	}
	c := r.Counts()
	fmt.Fprintf(w, "\n%d checks: %d ok, %d warnings, %d problems\n", len(r.Results), c[OK], c[Warning], c[Problem])
}

// JSON writes the report for machines.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	c := r.Counts()
	return enc.Encode(struct {
		Results []Result       `json:"results"`
		Summary map[Status]int `json:"summary"`
	}{r.Results, c})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
