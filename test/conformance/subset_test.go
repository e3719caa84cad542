package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestConformanceSubset is CI's share of issue 12: the subset of the
// Kubernetes e2e conformance specs (subsetFocus) against knode as the only
// node of a real cluster, every spec must pass. It builds what it needs
// beyond `make setup` (kube-controller-manager, kube-scheduler, agnhost and
// the small e2e binary, hack/setup-conformance.sh; minutes when cold, see
// docs/conformance.md) while `go test ./...` runs the other packages.
// Reports: _output/conformance-subset/knode/.
func TestConformanceSubset(t *testing.T) {
	if os.Getenv("KNODE_INTEGRATION") != "1" {
		t.Skip("needs root, the tools of `make setup` and minutes: run with `make test` (KNODE_INTEGRATION=1)")
	}
	repo, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(repo, "_output", "conformance-subset")
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(context.Background(), log, options{agent: "knode", out: out, subset: true}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, "knode", "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s summary
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	// Each focus names one spec: fewer selected means a focus matches
	// nothing any more (a renamed spec), which must not pass silently.
	if s.Selected != len(subsetFocus) || s.Passed != s.Selected {
		for name, r := range s.Specs {
			if r.State != "passed" {
				t.Errorf("%s: %s: %s", r.State, name, r.Message)
			}
		}
		t.Fatalf("conformance subset: selected %d (want %d), passed %d, failed %d, skipped %d; reports in %s",
			s.Selected, len(subsetFocus), s.Passed, s.Failed, s.Skipped, filepath.Join(out, "knode"))
	}
}
