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
)

func TestNames(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	name := ArchiveName("web-node1", "kube-system", "my-app", ts)
	if name != "checkpoint-web-node1_kube-system-my-app-2026-01-02T03:04:05Z.tar" {
		t.Fatalf("name %q", name)
	}
	for _, tt := range []struct {
		name string
		ok   bool
		seq  int
	}{
		{name, true, 0},
		{withSuffix(name, 2), true, 2},
		{"checkpoint-web_default-app-2026-01-02T03:04:05+02:00.tar", true, 0},
		{"../" + name, false, 0},
		{".tmp-abc-" + name, false, 0},
		{"checkpoint-web_default-app.tar", false, 0},
		{"checkpoint-Web_default-app-2026-01-02T03:04:05Z.tar", false, 0},
		{"checkpoint-web_default-app-2026-01-02T03:04:05Z.tar.gz", false, 0},
		{"checkpoint-web_default-app-2026-13-45T03:04:05Z.tar", false, 0},
	} {
		p, ok := parseName(tt.name)
		if ok != tt.ok || ValidArchiveName(tt.name) != tt.ok || (ok && p.seq != tt.seq) {
			t.Errorf("%q: ok=%v seq=%d, want %v %d", tt.name, ok, p.seq, tt.ok, tt.seq)
		}
	}
}

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

func newService(t *testing.T, r Retention, now func() time.Time, rt Runtime) (*Service, *[]string) {
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
	s, _ := newService(t, Retention{}, nil, writingRuntime{})
	for _, tt := range []struct {
		ns, pod, container string
		code               int
		body               string
		id                 string
	}{
		{"default", "nope", "app", 404, "pod does not exist", ""},
		{"default", "web", "nope", 404, "container nope does not exist", ""},
		{"default", "web", "app", 0, "", "abc"},
		{"default", "web", "init", 0, "", ""},
	} {
		tgt, err := s.Resolve(tt.ns, tt.pod, tt.container)
		var e *Error
		if tt.code != 0 {
			if !errors.As(err, &e) || e.Code != tt.code || e.Body != tt.body {
				t.Errorf("%s: %v, want %d %q", tt.container, err, tt.code, tt.body)
			}
			continue
		}
		if err != nil || tgt.ContainerID != tt.id {
			t.Errorf("%s: %+v %v", tt.container, tgt, err)
		}
	}
	tgt, _ := s.Resolve("default", "web", "init")
	_, err := s.Checkpoint(context.Background(), tgt, 0)
	var e *Error
	if !errors.As(err, &e) || e.Code != 500 || e.Body != "checkpointing of default/web/init failed (container init not found running)" {
		t.Fatalf("not running: %v", err)
	}
}

func TestRetention(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, deleted := newService(t, Retention{MaxPerContainer: 2, MaxAge: time.Hour}, clock, writingRuntime{})
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
	s, _ := newService(t, Retention{}, nil, writingRuntime{err: status.Error(codes.Unimplemented, "no")})
	tgt, _ := s.Resolve("default", "web", "app")
	_, err := s.Checkpoint(context.Background(), tgt, 0)
	var e *Error
	if !errors.As(err, &e) || e.Code != 500 || !strings.HasPrefix(e.Body, "checkpointing of default/web/app failed (rpc error: code = Unimplemented desc = no)") {
		t.Fatalf("got %v", err)
	}
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != 0 {
		t.Fatalf("left %d files", len(entries))
	}
}

func TestDiagnosis(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.Unimplemented, "method CheckpointContainer not implemented"), "does not implement CheckpointContainer"},
		{errors.New("criu failed: Error (criu/vdso.c:...): vdso: Unexpected rt vDSO area bounds"), "older than 4.1"},
		{errors.New(`exec: "criu": executable file not found in $PATH`), "CRIU is not installed"},
		{errors.New("something else"), ""},
	} {
		got := Diagnosis(tt.err, "containerd://1.6.20")
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%v: %q, want %q", tt.err, got, tt.want)
		}
	}
	if !strings.Contains(Diagnosis(status.Error(codes.Unimplemented, "x"), "containerd://1.6.20"), "containerd://1.6.20") {
		t.Error("the Unimplemented hint must name the runtime and version")
	}
}

func TestVersions(t *testing.T) {
	for _, tt := range []struct {
		v, min string
		want   bool
	}{{"6.18.44-fc", "6.13", true}, {"6.12.9", "6.13", false}, {"4.1.1", "4.1", true}, {"3.17.1", "4.1", false}, {"4.1", "4.1", true}} {
		if got := VersionAtLeast(tt.v, tt.min); got != tt.want {
			t.Errorf("%s >= %s: %v", tt.v, tt.min, got)
		}
	}
	if !VDSOProblem("3.17.1", "6.18.0") || VDSOProblem("4.1.1", "6.18.0") || VDSOProblem("3.17.1", "6.1.0") {
		t.Error("VDSOProblem rule")
	}
}
