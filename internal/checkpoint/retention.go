package checkpoint

import (
	"os"

	"knode.io/knode/internal/checkpoint/retention"
)

// enforceRetention applies the retention policy to the directory, sparing
// keep (the archive just written).
func (s *Service) enforceRetention(keep string) {
	if s.opts.Retention == (retention.Policy{}) {
		return
	}
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	all, err := s.scan()
	if err != nil {
		s.opts.Log.Warn("retention: cannot list archives", "err", err)
		return
	}
	items := make([]retention.Item, len(all))
	for i, a := range all {
		items[i] = a.item()
	}
	retention.Apply(s.opts.Retention, items, s.opts.Now(), keep, func(it retention.Item, reason string) bool {
		if err := os.Remove(it.Path); err != nil {
			s.opts.Log.Warn("retention: cannot delete archive", "archive", it.Path, "err", err)
			return false
		}
		s.opts.Deleted(reason)
		s.opts.Log.Info("retention deleted a checkpoint archive", "archive", it.Path, "reason", reason, "bytes", it.Size)
		return true
	})
}
