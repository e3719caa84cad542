package pods

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/allocstate"
	"knode.io/knode/internal/podsource"
)

// restartAllocations is a knode started again on root: allocations read
// from its checkpoints.
func restartAllocations(t *testing.T, root string) *testAllocs {
	t.Helper()
	a := testAllocations(func() (int64, int64) { return 2000, 4 << 30 })
	if err := a.open(root); err != nil {
		t.Fatal(err)
	}
	return a
}

// What a pod was admitted with, a resize that waits and what its running
// container was given survive a restart: the pod runs on with its
// allocation, the resize still waits, and the container's actuated
// resources are its own, not taken from the spec.
func TestAllocationsSurviveARestart(t *testing.T) {
	root := t.TempDir()
	a := restartAllocations(t, root)
	a.admit(resizePod("other", "1500m", "1Gi"))
	a.admit(resizePod("pod", "100m", "64Mi"))
	pa := a.pods["pod"]
	a.actuated(pa, "main", "ctr-1", pa.containers["main"])
	if got := a.admit(resizePod("pod", "600m", "64Mi")); cpuOf(got) != "100m" || pa.pendingReason != v1.PodReasonDeferred {
		t.Fatalf("before the restart: runs with %s, pending %q", cpuOf(got), pa.pendingReason)
	}
	for _, name := range []string{allocstate.Allocated, allocstate.Actuated} {
		fi, err := os.Stat(filepath.Join(root, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", name, fi, err)
		}
	}

	b := restartAllocations(t, root)
	b.admit(resizePod("other", "1500m", "1Gi"))
	got := b.admit(resizePod("pod", "600m", "64Mi"))
	pb := b.pods["pod"]
	if cpuOf(got) != "100m" || pb.pendingReason != v1.PodReasonDeferred ||
		pb.pendingMessage != "Node didn't have enough resource: cpu, requested: 600, used: 1500, capacity: 2000" {
		t.Fatalf("after the restart: runs with %s, pending %q %q", cpuOf(got), pb.pendingReason, pb.pendingMessage)
	}
	// The running container is the one actuated before the restart.
	spec := resizePod("pod", "600m", "64Mi").Spec.Containers[0].Resources
	if act := b.actuated(pb, "main", "ctr-1", spec); act.Requests.Cpu().String() != "100m" {
		t.Fatalf("actuated after the restart: %v", act.Requests.Cpu())
	}
	// Once the other pod is gone the resize is allocated, and that too is kept.
	b.forget("other")
	if got := b.admit(resizePod("pod", "600m", "64Mi")); cpuOf(got) != "600m" {
		t.Fatalf("resize not allocated once it fits: %s", cpuOf(got))
	}
	c := restartAllocations(t, root)
	if _, ok := c.restored["other"]; ok {
		t.Fatal("a forgotten pod's allocation was kept")
	}
	if got := c.admit(resizePod("pod", "600m", "64Mi")); cpuOf(got) != "600m" || c.pods["pod"].pendingReason != "" {
		t.Fatalf("after a second restart: runs with %s, pending %q", cpuOf(got), c.pods["pod"].pendingReason)
	}
}

// Checkpointed pods knode does not find again are dropped once every
// source has spoken, and written out; until then they are kept.
func TestRestoredAllocationsOfGonePodsAreDropped(t *testing.T) {
	root := t.TempDir()
	a := restartAllocations(t, root)
	a.admit(resizePod("gone", "100m", "64Mi"))
	b := restartAllocations(t, root)
	b.admit(resizePod("new", "100m", "64Mi"))
	if _, pods, err := allocstate.Open(root, allocstate.Allocated); err != nil || len(pods) != 2 {
		t.Fatalf("a pod not seen yet was dropped before the sources spoke: %v %v", pods, err)
	}
	b.dropRestored()
	if _, pods, err := allocstate.Open(root, allocstate.Allocated); err != nil || len(pods) != 1 || pods["new"] == nil {
		t.Fatalf("after the sources spoke: %v %v", pods, err)
	}
}

// A corrupt checkpoint stops the start, with the kubelet's message.
func TestCorruptCheckpointRefusesToStart(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, allocstate.Actuated), []byte(`{"data":"{}","checksum":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewManager(Options{RootDir: root, Log: slog.New(slog.DiscardHandler)})
	want := `could not restore state from checkpoint: checkpoint is corrupted, please drain this node and delete pod resource information checkpoint file "` +
		filepath.Join(root, allocstate.Actuated) + `" before restarting Kubelet`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

// A pod allocated before the restart was admitted then: it counts against
// the node for the others' admission and resizes from the start, before
// its worker finds it running.
func TestRestoredPodCountsAsAdmitted(t *testing.T) {
	root := t.TempDir()
	a := restartAllocations(t, root)
	a.admit(resizePod("hog", "1500m", "1Gi"))
	m, err := NewManager(Options{RootDir: root, Log: slog.New(slog.DiscardHandler)}, podsource.API)
	if err != nil {
		t.Fatal(err)
	}
	m.SetPods(podsource.API, []*v1.Pod{resizePod("hog", "1500m", "1Gi"), resizePod("pod", "100m", "64Mi")})
	others := m.admittedOthers("pod")
	if len(others) != 1 || others[0].UID != "hog" {
		t.Fatalf("admitted others after the restart: %v", others)
	}
	if others := m.admittedOthers("hog"); len(others) != 0 {
		t.Fatalf("a pod never admitted counts: %v", others)
	}
}
