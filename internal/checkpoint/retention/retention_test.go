package retention

import (
	"strings"
	"testing"
	"time"
)

// TestApply: count per container, then age, then bytes, oldest first; the
// archive just written stays, and an archive that could not be deleted
// still counts against the budget.
func TestApply(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	item := func(name, group string, minutes int, size int64) Item {
		return Item{Path: "/d/" + name, Name: name, Group: group, Time: t0.Add(time.Duration(minutes) * time.Minute), Size: size}
	}
	items := []Item{
		item("a1", "a", 0, 10), item("b1", "b", 1, 10), item("a2", "a", 2, 10),
		item("a3", "a", 3, 10), item("b2", "b", 4, 10), item("a4", "a", 5, 10),
	}
	for _, tt := range []struct {
		name   string
		p      Policy
		keep   string
		stuck  string // removal of this path fails
		now    time.Time
		remove string
	}{
		{"off", Policy{}, "", "", t0, ""},
		{"count", Policy{MaxPerContainer: 2}, "", "", t0, "a1:count a2:count"},
		{"count spares keep", Policy{MaxPerContainer: 2}, "/d/a1", "", t0, "a2:count"},
		{"age", Policy{MaxAge: 2 * time.Minute}, "", "", t0.Add(4 * time.Minute), "a1:age b1:age"},
		{"bytes", Policy{MaxTotalBytes: 35}, "", "", t0, "a1:bytes b1:bytes a2:bytes"},
		{"bytes: a failed removal still counts", Policy{MaxTotalBytes: 35}, "", "/d/b1", t0, "a1:bytes a2:bytes a3:bytes"},
		{"bytes: the newest stays under any budget", Policy{MaxTotalBytes: 1}, "", "", t0, "a1:bytes b1:bytes a2:bytes a3:bytes b2:bytes"},
	} {
		var got []string
		Apply(tt.p, items, tt.now, tt.keep, func(it Item, reason string) bool {
			if it.Path == tt.stuck {
				return false
			}
			got = append(got, it.Name+":"+reason)
			return true
		})
		if strings.Join(got, " ") != tt.remove {
			t.Errorf("%s: removed %q, want %q", tt.name, strings.Join(got, " "), tt.remove)
		}
	}
}
