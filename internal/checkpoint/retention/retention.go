// Package retention decides which checkpoint archives go when the
// directory exceeds its limits: archives per container, age, then the
// total byte budget, oldest first. It decides and asks the caller to
// delete; the archive store lists the directory and deletes the files.
package retention

import (
	"sort"
	"time"
)

// Policy bounds the checkpoints directory; zero values turn a limit off.
type Policy struct {
	MaxPerContainer int
	MaxAge          time.Duration
	MaxTotalBytes   int64
}

// Item is one archive as the policy sees it.
type Item struct {
	Path string
	// Group is the container the archive was taken of.
	Group string
	// Time and Seq (the collision counter) come from the archive's name.
	Time time.Time
	Seq  int
	Name string
	Size int64
}

// Older orders archives by the time in their names, then by collision counter.
func Older(a, b Item) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	if a.Seq != b.Seq {
		return a.Seq < b.Seq
	}
	return a.Name < b.Name
}

// Apply removes, through remove, the items beyond p's limits: per
// container count, age, then the total byte budget. items must be oldest
// first. keep (the archive just written) is never removed, so a request
// always gets its archive; remove reports whether the item is gone, and
// an item that is not still counts against the budget.
func Apply(p Policy, items []Item, now time.Time, keep string, remove func(it Item, reason string) bool) {
	if p == (Policy{}) {
		return
	}
	deleted := map[string]bool{}
	drop := func(it Item, reason string) {
		if it.Path == keep || deleted[it.Path] {
			return
		}
		if remove(it, reason) {
			deleted[it.Path] = true
		}
	}
	if p.MaxPerContainer > 0 {
		byGroup := map[string][]Item{}
		for _, it := range items {
			byGroup[it.Group] = append(byGroup[it.Group], it)
		}
		for _, list := range byGroup {
			// items are oldest first, so the excess is at the front.
			for i := 0; i < len(list)-p.MaxPerContainer; i++ {
				drop(list[i], "count")
			}
		}
	}
	if p.MaxAge > 0 {
		cutoff := now.Add(-p.MaxAge)
		for _, it := range items {
			if it.Time.Before(cutoff) {
				drop(it, "age")
			}
		}
	}
	if p.MaxTotalBytes > 0 {
		var total int64
		var left []Item
		for _, it := range items {
			if !deleted[it.Path] {
				total += it.Size
				left = append(left, it)
			}
		}
		sort.SliceStable(left, func(i, j int) bool { return Older(left[i], left[j]) })
		for i, it := range left {
			// The newest archive always stays: a budget smaller than one
			// archive must not delete what a request just produced.
			if total <= p.MaxTotalBytes || i == len(left)-1 {
				break
			}
			if it.Path == keep {
				continue
			}
			drop(it, "bytes")
			if deleted[it.Path] {
				total -= it.Size
			}
		}
	}
}
