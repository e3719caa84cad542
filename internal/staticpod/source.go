package staticpod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/podsource"
)

// FileError is a manifest that was skipped, and why.
type FileError struct {
	File string
	Err  error
}

func (e FileError) Error() string { return e.File + ": " + e.Err.Error() }

// Snapshot is the complete set of pods the directory declares now.
type Snapshot struct {
	Pods   []*v1.Pod
	Errors []FileError
}

// Source watches one manifest directory.
type Source struct {
	dir      string
	nodeName string
	resync   time.Duration
	log      *slog.Logger
	// reported remembers the last message per file, so a bad manifest is
	// logged once per change rather than at every re-scan.
	reported map[string]string
}

// NewSource returns a source for dir; resync is the periodic re-scan (the
// kubelet's fileCheckFrequency) that backs up file events.
func NewSource(dir, nodeName string, resync time.Duration, log *slog.Logger) *Source {
	return &Source{dir: dir, nodeName: nodeName, resync: resync, log: log, reported: map[string]string{}}
}

// Run pushes the directory's pods into sink at start and after every change
// until ctx ends, as source podsource.File; a set is pushed only when it
// differs from the previous one. The pods' errors are logged by Scan.
func (s *Source) Run(ctx context.Context, sink podsource.Sink) error {
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch manifests: %w", err)
	}
	defer watcher.Close()
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("create manifest directory: %w", err)
	}
	if err := watcher.Add(s.dir); err != nil {
		return fmt.Errorf("watch %s: %w", s.dir, err)
	}
	ticker := time.NewTicker(s.resync)
	defer ticker.Stop()
	// Editors write in bursts (create, write, rename); wait for quiet.
	const settle = 5 * time.Millisecond
	debounce := time.NewTimer(0)
	var lastKey string
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-watcher.Events:
			if !ok {
				return errors.New("manifest watcher closed")
			}
			if !ignored(filepath.Base(ev.Name)) {
				debounce.Reset(settle)
			}
		case err, ok := <-watcher.Errors:
			if !ok {
				return errors.New("manifest watcher closed")
			}
			s.log.Warn("manifest watcher error; relying on periodic re-scan", "dir", s.dir, "err", err)
		case <-ticker.C:
			debounce.Reset(0)
		case <-debounce.C:
			snap := s.Scan()
			key := snapshotKey(snap)
			if key == lastKey {
				continue
			}
			lastKey = key
			sink.SetPods(podsource.File, snap.Pods)
		}
	}
}

// Scan reads the directory once. Files are taken in name order, so when two
// declare the same pod the first by name wins, deterministically.
func (s *Source) Scan() Snapshot {
	var snap Snapshot
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		snap.Errors = append(snap.Errors, FileError{File: s.dir, Err: err})
		s.report(s.dir, err)
		return snap
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	seen := map[string]string{} // namespace/name -> file
	current := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || ignored(e.Name()) {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		current[path] = true
		pod, err := s.readFile(path)
		if err == nil {
			key := pod.Namespace + "/" + pod.Name
			if first, dup := seen[key]; dup {
				err = fmt.Errorf("pod %s is already declared by %s; this file is ignored", key, first)
			} else {
				seen[key] = path
				snap.Pods = append(snap.Pods, pod)
			}
		}
		if err != nil {
			snap.Errors = append(snap.Errors, FileError{File: path, Err: err})
		}
		s.report(path, err)
	}
	for file := range s.reported {
		if !current[file] && file != s.dir {
			delete(s.reported, file)
		}
	}
	return snap
}

func (s *Source) readFile(path string) (*v1.Pod, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(path, data, s.nodeName)
}

func (s *Source) report(file string, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if s.reported[file] == msg {
		return
	}
	s.reported[file] = msg
	if err != nil {
		s.log.Error("skipping static pod manifest", "file", file, "err", err)
	}
}

// ignored follows the kubelet: hidden files (editor swap files, atomic-write
// temporaries) are not manifests.
func ignored(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") || strings.HasSuffix(name, ".swp")
}

func snapshotKey(s Snapshot) string {
	var b strings.Builder
	for _, p := range s.Pods {
		b.WriteString(string(p.UID))
		b.WriteByte(0)
		b.WriteString(p.Annotations[podsource.HashAnnotation])
		b.WriteByte(0)
	}
	for _, e := range s.Errors {
		b.WriteString(e.Error())
		b.WriteByte(0)
	}
	return b.String()
}
