package logrotation

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type fakeRuntime struct {
	logPath   string
	reopenErr error
	reopened  int
}

func (f *fakeRuntime) ListContainers(context.Context, *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	return []*runtimeapi.Container{{Id: "c1"}}, nil
}

func (f *fakeRuntime) ContainerStatus(context.Context, string, bool) (*runtimeapi.ContainerStatusResponse, error) {
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: "c1", LogPath: f.logPath}}, nil
}

func (f *fakeRuntime) ReopenContainerLog(context.Context, string) error {
	if f.reopenErr != nil {
		return f.reopenErr
	}
	f.reopened++
	// The runtime starts a new file.
	return os.WriteFile(f.logPath, nil, 0o640)
}

func listDir(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "0.log")
	rt := &fakeRuntime{logPath: log}
	now := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	r, err := New(Options{Runtime: rt, MaxSize: 100, MaxFiles: 3, RequestTimeout: time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	write := func(n int) { os.WriteFile(log, []byte(strings.Repeat("x", n)), 0o640) }

	write(99) // under the limit: nothing happens
	if err := r.RotateAll(context.Background()); err != nil || rt.reopened != 0 || len(listDir(t, dir)) != 1 {
		t.Fatalf("under the limit: %v, reopened %d, files %v", err, rt.reopened, listDir(t, dir))
	}
	steps := []struct {
		want []string
	}{
		{[]string{"0.log", "0.log.20261127-200000"}},
		// The older rotation is gzipped, the newest kept plain for readers.
		{[]string{"0.log", "0.log.20261127-200000.gz", "0.log.20261127-200010"}},
		// MaxFiles 3: the current log and two rotations at most.
		{[]string{"0.log", "0.log.20261127-200010.gz", "0.log.20261127-200020"}},
	}
	for i, step := range steps {
		write(100)
		if err := r.RotateAll(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := r.RotateAll(context.Background()); err != nil { // the new log is small: nothing more
			t.Fatal(err)
		}
		if got := listDir(t, dir); strings.Join(got, " ") != strings.Join(step.want, " ") {
			t.Fatalf("rotation %d: files %v, want %v", i+1, got, step.want)
		}
		now = now.Add(10 * time.Second)
	}
	// The gzipped rotation holds the log as it was.
	f, err := os.Open(filepath.Join(dir, "0.log.20261127-200010.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(zr)
	if string(data) != strings.Repeat("x", 100) {
		t.Fatalf("compressed rotation holds %d bytes", len(data))
	}

	// A runtime that cannot reopen keeps writing the same file: its name is given back.
	rt.reopenErr = errors.New("reopen not supported")
	write(500)
	if err := r.RotateAll(context.Background()); err == nil {
		t.Fatal("a failed reopen is not reported")
	}
	if fi, err := os.Stat(log); err != nil || fi.Size() != 500 {
		t.Fatalf("the log was not given its name back: %v %v", fi, err)
	}
}

func TestOptions(t *testing.T) {
	if _, err := New(Options{MaxSize: 0, MaxFiles: 5}); err == nil {
		t.Error("size 0 accepted")
	}
	if _, err := New(Options{MaxSize: 10, MaxFiles: 1}); err == nil {
		t.Error("one file accepted")
	}
}
