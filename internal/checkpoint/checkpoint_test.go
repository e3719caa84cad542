package checkpoint

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/apierr"
	"knode.io/knode/internal/checkpoint/retention"
)

// writingRuntime writes a small file at the requested location.
type writingRuntime struct{ err error }

func (w writingRuntime) CheckpointContainer(_ context.Context, req *runtimeapi.CheckpointContainerRequest) error {
	if err := os.WriteFile(req.Location, []byte("archive"), 0o644); err != nil {
		return err
	}
	return w.err
}

type onePod struct{}

func (onePod) GetPod(ns, name string) (*v1.Pod, bool) {
	if ns != "default" || name != "web" {
		return nil, false
	}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app"}}, InitContainers: []v1.Container{{Name: "init"}}},
		Status: v1.PodStatus{ContainerStatuses: []v1.ContainerStatus{{Name: "app", ContainerID: "containerd://abc",
			State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}}}}, true
}

func newService(t *testing.T, r retention.Policy, now func() time.Time, rt Runtime) (*Service, *[]string) {
	t.Helper()
	var deleted []string
	s, err := New(Options{Dir: filepath.Join(t.TempDir(), "checkpoints"), Runtime: rt, Pods: onePod{}, Retention: r, Now: now,
		Deleted: func(reason string) { deleted = append(deleted, reason) },
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.Run(ctx)
	return s, &deleted
}

// settle waits until the retention worker has handled every request.
func settle(s *Service) {
	for s.pending.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
}

func TestResolve(t *testing.T) {
	s, _ := newService(t, retention.Policy{}, nil, writingRuntime{})
	for _, tt := range []struct {
		ns, pod, container string
		kind               apierr.Kind
		body               string
		id                 string
	}{
		{"default", "nope", "app", apierr.NotFound, "pod does not exist", ""},
		{"default", "web", "nope", apierr.NotFound, "container nope does not exist", ""},
		{"default", "web", "app", 0, "", "abc"},
		{"default", "web", "init", 0, "", ""},
	} {
		tgt, err := s.Resolve(tt.ns, tt.pod, tt.container)
		var e *apierr.Error
		if tt.kind != apierr.Unknown {
			if !errors.As(err, &e) || e.Kind != tt.kind || e.Msg != tt.body {
				t.Errorf("%s: %v, want %d %q", tt.container, err, tt.kind, tt.body)
			}
			continue
		}
		if err != nil || tgt.ContainerID != tt.id {
			t.Errorf("%s: %+v %v", tt.container, tgt, err)
		}
	}
	tgt, _ := s.Resolve("default", "web", "init")
	_, err := s.Checkpoint(context.Background(), tgt, 0)
	var e *apierr.Error
	if !errors.As(err, &e) || e.Kind != apierr.Internal || e.Msg != "checkpointing of default/web/init failed (container init not found running)" {
		t.Fatalf("not running: %v", err)
	}
}

func TestRetention(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, deleted := newService(t, retention.Policy{MaxPerContainer: 2, MaxAge: time.Hour}, clock, writingRuntime{})
	tgt, _ := s.Resolve("default", "web", "app")
	var paths []string
	for i := 0; i < 3; i++ {
		r, err := s.Checkpoint(context.Background(), tgt, 0)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, r.Path)
		settle(s)
	}
	// Same second: the -1, -2 names, the oldest (no suffix) removed by count.
	if !strings.HasSuffix(paths[1], "Z-1.tar") || !strings.HasSuffix(paths[2], "Z-2.tar") {
		t.Fatalf("collision names: %v", paths)
	}
	if _, err := os.Stat(paths[0]); !os.IsNotExist(err) || len(*deleted) != 1 || (*deleted)[0] != "count" {
		t.Fatalf("count retention: deleted %v", *deleted)
	}
	for _, p := range paths[1:] {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", p, fi, err)
		}
	}
	// Two hours later, a new archive: the old ones exceed the age limit.
	now = now.Add(2 * time.Hour)
	r, err := s.Checkpoint(context.Background(), tgt, 0)
	if err != nil {
		t.Fatal(err)
	}
	newest := r.Path
	settle(s)
	list, _ := s.List(Filter{})
	if len(list) != 1 || list[0].Path != newest {
		t.Fatalf("after age retention: %+v", list)
	}
	if got := strings.Join(*deleted, ","); got != "count,count,age" {
		t.Fatalf("deletion reasons %s", got)
	}
}

func TestFailureLeavesNothing(t *testing.T) {
	s, _ := newService(t, retention.Policy{}, nil, writingRuntime{err: status.Error(codes.Unimplemented, "no")})
	tgt, _ := s.Resolve("default", "web", "app")
	_, err := s.Checkpoint(context.Background(), tgt, 0)
	var e *apierr.Error
	if !errors.As(err, &e) || e.Kind != apierr.Internal || !strings.HasPrefix(e.Msg, "checkpointing of default/web/app failed (rpc error: code = Unimplemented desc = no)") {
		t.Fatalf("got %v", err)
	}
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != 0 {
		t.Fatalf("left %d files", len(entries))
	}
}
