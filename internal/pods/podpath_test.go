package pods

import (
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// A pod whose UID would name a directory outside <root-dir>/pods never
// reaches a worker, whatever its source.
func TestPodWithPathLikeUIDIsRefused(t *testing.T) {
	f := newFixture(t)
	bad := testPod(v1.RestartPolicyAlways)
	bad.UID = "../../escape"
	good := testPod(v1.RestartPolicyAlways)
	good.Name, good.UID = "ok-n1", "uid-ok"
	f.m.SetPods("api", []*v1.Pod{bad, good})
	pods := f.m.Pods()
	if len(pods) != 1 || pods[0].UID != "uid-ok" {
		t.Fatalf("pods = %v; want only the valid one", pods)
	}
	f.m.mu.Lock()
	hasWorker := f.m.workerLocked(bad.UID) != nil
	f.m.mu.Unlock()
	if hasWorker {
		t.Fatal("a worker was started for the pod with a path-like UID")
	}
	if _, err := os.Stat(filepath.Join(f.m.opts.RootDir, "escape")); !os.IsNotExist(err) {
		t.Fatalf("something was created outside the pods dir: %v", err)
	}
}
