package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
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
var ErrArchiveNotFound = errors.New("checkpoint archive not found")

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
		if !e.Type().IsRegular() || !ValidArchiveName(e.Name()) {
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
	parsed, ok := parseName(name)
	if !ok {
		return Archive{}, false
	}
	path := filepath.Join(s.opts.Dir, name)
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return Archive{}, false
	}
	a := Archive{Name: name, Path: path, Pod: parsed.pod, Time: parsed.time, Size: fi.Size(),
		key: parsed.pod + "_" + parsed.nsContainer, seq: parsed.seq}
	a.Namespace, a.Container = getLabel(path, xattrNamespace), getLabel(path, xattrContainer)
	if a.Namespace == "" || !strings.HasPrefix(parsed.nsContainer, a.Namespace+"-") {
		// Not written by knode (or no xattrs): the first "-" is the best split
		// the name allows.
		a.Namespace, a.Container, _ = strings.Cut(parsed.nsContainer, "-")
	}
	return a, true
}

// Get resolves an archive name safely: only plain names of archives in the
// directory, never a path.
func (s *Service) Get(name string) (Archive, error) {
	if !ValidArchiveName(name) {
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
	d, err := ReadDetails(a.Path)
	if err != nil {
		return nil, err
	}
	d.Archive = a
	return d, nil
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

// older orders archives by the time in their names, then by collision counter.
func older(a, b Archive) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	if a.seq != b.seq {
		return a.seq < b.seq
	}
	return a.Name < b.Name
}

// xattrSHA256 caches an archive's digest, computed at its first download.
const xattrSHA256 = "user.knode.sha256"

// digest computes and records an archive's SHA-256 unless known.
func (s *Service) digest(path string) {
	s.digestMu.Lock()
	defer s.digestMu.Unlock()
	if KnownDigest(path) != "" {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err == nil {
		RecordDigest(path, hex.EncodeToString(h.Sum(nil)))
	}
}

// Digest returns an archive's SHA-256, computing it if needed.
func (s *Service) Digest(f *os.File) string {
	s.digest(f.Name())
	return KnownDigest(f.Name())
}

// Open returns an archive for reading with its SHA-256 (hex) when already
// known ("" otherwise: Digest computes it).
func (s *Service) Open(name string) (*os.File, string, error) {
	a, err := s.Get(name)
	if err != nil {
		return nil, "", err
	}
	f, err := os.Open(a.Path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, "", ErrArchiveNotFound
		}
		return nil, "", fmt.Errorf("open archive: %w", err)
	}
	return f, KnownDigest(a.Path), nil
}
