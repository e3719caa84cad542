package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"knode.io/knode/internal/checkpoint/format"
)

// Content is an archive opened for download. Its digest is part of the
// store's knowledge (kept beside the archive), so computing and recording
// it happens here, not in the handler that serves the bytes.
type Content struct {
	s       *Service
	f       *os.File
	Name    string
	Size    int64
	ModTime time.Time
	known   string
}

// Open returns an archive for reading.
func (s *Service) Open(name string) (*Content, error) {
	a, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(a.Path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, ErrArchiveNotFound
		}
		return nil, fmt.Errorf("open archive: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Content{s: s, f: f, Name: fi.Name(), Size: fi.Size(), ModTime: fi.ModTime(), known: format.KnownDigest(a.Path)}, nil
}

// Close releases the archive.
func (c *Content) Close() error { return c.f.Close() }

// ReadSeeker reads the archive (for ranges).
func (c *Content) ReadSeeker() io.ReadSeeker { return c.f }

// KnownDigest is the archive's SHA-256 (hex) when known without reading
// it, else "".
func (c *Content) KnownDigest() string { return c.known }

// Digest returns the archive's SHA-256 (hex), computing and recording it
// if it is not known yet (one disk pass, one archive at a time).
func (c *Content) Digest() string {
	if c.known != "" {
		return c.known
	}
	c.s.digest(c.f.Name())
	c.known = format.KnownDigest(c.f.Name())
	return c.known
}

// StreamDigest copies the whole archive to w and computes its digest on
// the way (one read instead of two), recording it when the copy completes.
func (c *Content) StreamDigest(w io.Writer) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), c.f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	format.RecordDigest(c.f.Name(), sum)
	c.known = sum
	return sum, nil
}

// digest computes and records an archive's SHA-256 unless known.
func (s *Service) digest(path string) {
	s.digestMu.Lock()
	defer s.digestMu.Unlock()
	if format.KnownDigest(path) != "" {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err == nil {
		format.RecordDigest(path, hex.EncodeToString(h.Sum(nil)))
	}
}
