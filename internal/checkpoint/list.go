package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"knode.io/knode/internal/apierr"
	"knode.io/knode/internal/checkpoint/format"
	"knode.io/knode/internal/checkpoint/retention"
)

// Archive is one finished checkpoint in the directory.
type Archive struct {
	Name      string    `json:"name"`
	Path      string    `json:"path"`
	Namespace string    `json:"namespace"`
	Pod       string    `json:"pod"`
	Container string    `json:"container"`
	Time      time.Time `json:"time"`
	Size      int64     `json:"size"`
	// key groups archives of one container for retention.
	key string
	seq int
}

// Filter selects archives; empty fields match everything.
type Filter struct {
	Namespace, Pod, Container string
}

func (f Filter) match(a Archive) bool {
	return (f.Namespace == "" || f.Namespace == a.Namespace) &&
		(f.Pod == "" || f.Pod == a.Pod) &&
		(f.Container == "" || f.Container == a.Container)
}

// ErrArchiveNotFound is returned for names that are not an archive here.
var ErrArchiveNotFound = apierr.New(apierr.NotFound, "checkpoint archive not found")

// Details is an archive in the directory and what its content tells
// (`checkpointctl show`).
type Details struct {
	Archive
	format.Details
}

// List returns the finished archives, oldest first.
func (s *Service) List(f Filter) ([]Archive, error) {
	all, err := s.scan()
	if err != nil {
		return nil, err
	}
	out := []Archive{}
	for _, a := range all {
		if f.match(a) {
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *Service) scan() ([]Archive, error) {
	entries, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints directory: %w", err)
	}
	var out []Archive
	for _, e := range entries {
		if !e.Type().IsRegular() || !format.ValidName(e.Name()) {
			continue
		}
		a, ok := s.describe(e.Name())
		if ok {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return older(out[i], out[j])
	})
	return out, nil
}

// describe reads one archive's facts from its name, xattrs and stat.
func (s *Service) describe(name string) (Archive, bool) {
	parsed, ok := format.ParseName(name)
	if !ok {
		return Archive{}, false
	}
	path := filepath.Join(s.opts.Dir, name)
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return Archive{}, false
	}
	a := Archive{Name: name, Path: path, Pod: parsed.Pod, Time: parsed.Time, Size: fi.Size(),
		key: parsed.Pod + "_" + parsed.NSContainer, seq: parsed.Seq}
	a.Namespace, a.Container = format.Labels(path)
	if a.Namespace == "" || !strings.HasPrefix(parsed.NSContainer, a.Namespace+"-") {
		// Not written by knode (or no xattrs): the first "-" is the best split
		// the name allows.
		a.Namespace, a.Container, _ = strings.Cut(parsed.NSContainer, "-")
	}
	return a, true
}

// Get resolves an archive name safely: only plain names of archives in the
// directory, never a path.
func (s *Service) Get(name string) (Archive, error) {
	if !format.ValidName(name) {
		return Archive{}, ErrArchiveNotFound
	}
	a, ok := s.describe(name)
	if !ok {
		return Archive{}, ErrArchiveNotFound
	}
	return a, nil
}

// Inspect reads an archive's metadata from its content.
func (s *Service) Inspect(name string) (*Details, error) {
	a, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	d, err := format.ReadDetails(a.Path)
	if err != nil {
		return nil, err
	}
	return &Details{Archive: a, Details: *d}, nil
}

// Delete removes one archive.
func (s *Service) Delete(name string) error {
	a, err := s.Get(name)
	if err != nil {
		return err
	}
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	if err := os.Remove(a.Path); err != nil {
		if os.IsNotExist(err) {
			return ErrArchiveNotFound
		}
		return fmt.Errorf("delete archive: %w", err)
	}
	s.opts.Log.Info("checkpoint archive deleted on request", "archive", a.Path)
	return nil
}

// item is the archive as the retention policy sees it.
func (a Archive) item() retention.Item {
	return retention.Item{Path: a.Path, Group: a.key, Time: a.Time, Seq: a.seq, Name: a.Name, Size: a.Size}
}

// older orders archives oldest first, by the rule retention uses.
func older(a, b Archive) bool { return retention.Older(a.item(), b.item()) }
