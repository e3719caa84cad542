package checkpoint

import (
	"os"
	"sort"
)

// enforceRetention deletes the oldest archives beyond the limits: per
// container count, age, then the total byte budget. keep (the archive just
// written) is never deleted, so a request always gets its archive.
func (s *Service) enforceRetention(keep string) {
	r := s.opts.Retention
	if r == (Retention{}) {
		return
	}
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	all, err := s.scan()
	if err != nil {
		s.opts.Log.Warn("retention: cannot list archives", "err", err)
		return
	}
	deleted := map[string]bool{}
	remove := func(a Archive, reason string) {
		if a.Path == keep || deleted[a.Path] {
			return
		}
		if err := os.Remove(a.Path); err != nil {
			s.opts.Log.Warn("retention: cannot delete archive", "archive", a.Path, "err", err)
			return
		}
		deleted[a.Path] = true
		s.opts.Deleted(reason)
		s.opts.Log.Info("retention deleted a checkpoint archive", "archive", a.Path, "reason", reason, "bytes", a.Size)
	}
	if r.MaxPerContainer > 0 {
		byContainer := map[string][]Archive{}
		for _, a := range all {
			byContainer[a.key] = append(byContainer[a.key], a)
		}
		for _, list := range byContainer {
			// all is oldest first, so the excess is at the front.
			for i := 0; i < len(list)-r.MaxPerContainer; i++ {
				remove(list[i], "count")
			}
		}
	}
	if r.MaxAge > 0 {
		cutoff := s.opts.Now().Add(-r.MaxAge)
		for _, a := range all {
			if a.Time.Before(cutoff) {
				remove(a, "age")
			}
		}
	}
	if r.MaxTotalBytes > 0 {
		var total int64
		var left []Archive
		for _, a := range all {
			if !deleted[a.Path] {
				total += a.Size
				left = append(left, a)
			}
		}
		sort.SliceStable(left, func(i, j int) bool { return older(left[i], left[j]) })
		for i, a := range left {
			// The newest archive always stays: a budget smaller than one
			// archive must not delete what a request just produced.
			if total <= r.MaxTotalBytes || i == len(left)-1 {
				break
			}
			if a.Path == keep {
				continue
			}
			remove(a, "bytes")
			if deleted[a.Path] {
				total -= a.Size
			}
		}
	}
}
