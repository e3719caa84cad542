package userns

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// TestAdversary3RetainKeepsRangesHandedOutAfterKeep: knode restarts with
// pod "gone"'s range on disk. The pods manager computes the set of pods to
// keep once every source has spoken, and Retain runs after (in its own
// goroutine). A tenant's pod created in between gets its range and its
// sandbox starts with it; the pod that was gone comes back too. Retain
// must free neither range: freed, the next pod would be given the same
// host IDs as a running sandbox (two pods' root in one ID range).
func TestAdversary3RetainKeepsRangesHandedOutAfterKeep(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir, 4)
	if _, err := m.GetOrCreate(pod("gone", no), "userns"); err != nil {
		t.Fatal(err)
	}
	m = newManager(t, dir, 4) // restart
	keep := map[types.UID]bool{}
	for _, uid := range []string{"tenant", "gone"} {
		if _, err := m.GetOrCreate(pod(uid, no), "userns"); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Retain(keep); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []string{"tenant", "gone"} {
		if _, ok := m.Allocated(types.UID(uid)); !ok {
			t.Errorf("pod %s: its running sandbox's range was freed", uid)
		}
		if _, err := os.Stat(filepath.Join(dir, uid, MappingsFile)); err != nil {
			t.Errorf("pod %s: %v", uid, err)
		}
	}
	// Whatever is freed now, no new pod shares a range with them.
	seen := map[uint32]string{}
	for _, uid := range []string{"tenant", "gone", "next1", "next2"} {
		ns, err := m.GetOrCreate(pod(uid, no), "userns")
		if err != nil {
			t.Fatal(err)
		}
		from := ns.Uids[0].HostId
		if other, ok := seen[from]; ok {
			t.Fatalf("pods %s and %s share host IDs from %d", other, uid, from)
		}
		seen[from] = uid
	}
}
