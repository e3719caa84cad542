package allocstate

import (
	"encoding/json"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestAdversary3ChecksumCollisionStillWritten: a tenant resizes its pod
// between two memory requests whose checkpoints have the same 32-bit
// checksum (found by a birthday search: FNV-32a is no digest). The second
// allocation must still reach the file; a write skipped because the
// checksum matched the last one would restore the old allocation after a
// restart while the container runs with the new one.
func TestAdversary3ChecksumCollisionStillWritten(t *testing.T) {
	pods := func(mem int64) Pods {
		return Pods{podA: {"app": {Requests: v1.ResourceList{v1.ResourceMemory: *resource.NewQuantity(mem, resource.DecimalSI)}}}}
	}
	first, second := pods(779938007), pods(1124720007)
	sum := func(p Pods) uint64 {
		blob, err := Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var cp checkpoint
		if err := json.Unmarshal(blob, &cp); err != nil {
			t.Fatal(err)
		}
		return cp.Checksum
	}
	if a, b := sum(first), sum(second); a != b {
		t.Fatalf("the fixture no longer collides: %d != %d", a, b)
	}
	dir := t.TempDir()
	f, _, err := Open(dir, Allocated)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Write(first); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(second); err != nil {
		t.Fatal(err)
	}
	_, got, err := Open(dir, Allocated)
	if err != nil {
		t.Fatal(err)
	}
	equalPods(t, got, second)
}
