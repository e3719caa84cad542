// Package fakecri is a CRI v1 runtime for tests that need what a real
// runtime cannot produce on demand: a checkpoint that hangs, fails, or
// writes an archive with the wrong mode. It speaks real CRI gRPC on a unix
// socket, keeps pods in memory (k8s.io/cri-api's fake runtime), and writes a
// real tar archive for CheckpointContainer.
package fakecri

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

// CheckpointCall is one CheckpointContainer request as the server saw it.
type CheckpointCall struct {
	Request  *runtimeapi.CheckpointContainerRequest
	Deadline time.Time
	Received time.Time
	Finished time.Time
}

// Behavior controls CheckpointContainer.
type Behavior struct {
	// Delay before answering (the call still honors its deadline).
	Delay time.Duration
	// Fail, if set, is returned after writing a partial archive.
	Fail error
	// Mode of the written archive (default 0644, as a careless runtime).
	Mode os.FileMode
	// Size of the pages file in the archive.
	Size int
	// Block, if set, holds every checkpoint until it is closed.
	Block chan struct{}
	// Unimplemented answers as a runtime without checkpoint support (containerd 1.6).
	Unimplemented bool
}

// Server is a running fake runtime.
type Server struct {
	Fake   *critest.FakeRuntimeService
	Images *critest.FakeImageService
	Socket string

	grpc *grpc.Server
	mu   sync.Mutex
	b    Behavior
	// Calls are the checkpoint requests received, in order.
	calls []CheckpointCall
	// images are the images TagImage made, by tag and by ID; while there
	// are none, every image is present (the fake runs no processes).
	images map[string]*runtimeapi.Image
	// beforeCreate runs as CreateContainer arrives, before the fake
	// resolves the container's image.
	beforeCreate func(*runtimeapi.ContainerConfig)
}

// TagImage points ref at img (taking ref from the image it named), as a
// pull of a tag that was re-pushed does; img is then found by ref and by
// its ID. From the first call on, the fake knows only the images tagged.
func (s *Server) TagImage(ref string, img *runtimeapi.Image) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.images == nil {
		s.images = map[string]*runtimeapi.Image{}
	}
	if old := s.images[ref]; old != nil {
		old.RepoTags = slices.DeleteFunc(old.RepoTags, func(t string) bool { return t == ref })
	}
	if !slices.Contains(img.RepoTags, ref) {
		img.RepoTags = append(img.RepoTags, ref)
	}
	s.images[ref] = img
	s.images[img.Id] = img
}

// BeforeCreate sets a hook CreateContainer runs first, before it resolves
// the container's image: a test moves a tag there, between what knode
// checked and what the runtime runs.
func (s *Server) BeforeCreate(hook func(*runtimeapi.ContainerConfig)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeCreate = hook
}

// image resolves ref as the runtime would at that moment: nil when the
// fake knows images and none is ref.
func (s *Server) image(ref string) (*runtimeapi.Image, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.images == nil {
		return &runtimeapi.Image{Id: "sha256:fake", Size: 1, RepoTags: []string{ref}}, true
	}
	img, ok := s.images[ref]
	if !ok {
		return nil, false
	}
	return proto.Clone(img).(*runtimeapi.Image), true
}

// Start serves on socket until Stop.
func Start(socket string) (*Server, error) {
	_ = os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &Server{Fake: critest.NewFakeRuntimeService(), Images: critest.NewFakeImageService(), Socket: socket, grpc: grpc.NewServer()}
	s.Fake.FakeStatus = &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true}, {Type: runtimeapi.NetworkReady, Status: true},
	}}
	runtimeapi.RegisterRuntimeServiceServer(s.grpc, &runtimeServer{s: s})
	runtimeapi.RegisterImageServiceServer(s.grpc, &imageServer{s: s})
	go func() { _ = s.grpc.Serve(ln) }()
	return s, nil
}

// StartTemp serves on a socket in a new directory under /tmp (a unix
// socket path must stay short, which t.TempDir() may not be) until the
// test ends.
func StartTemp(t testing.TB) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "fakecri")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := Start(filepath.Join(dir, "cri.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop ends the server.
func (s *Server) Stop() { s.grpc.Stop() }

// SetBehavior replaces the checkpoint behavior.
func (s *Server) SetBehavior(b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = b
}

// Calls returns the checkpoint requests so far.
func (s *Server) Calls() []CheckpointCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]CheckpointCall(nil), s.calls...)
}

func (s *Server) checkpoint(ctx context.Context, req *runtimeapi.CheckpointContainerRequest) error {
	s.mu.Lock()
	b := s.b
	call := CheckpointCall{Request: req, Received: time.Now()}
	call.Deadline, _ = ctx.Deadline()
	idx := len(s.calls)
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	if b.Unimplemented {
		return status.Error(codes.Unimplemented, "method CheckpointContainer not implemented")
	}
	defer func() {
		s.mu.Lock()
		s.calls[idx].Finished = time.Now()
		s.mu.Unlock()
	}()
	if _, err := s.Fake.ContainerStatus(ctx, req.ContainerId, false); err != nil {
		return status.Errorf(codes.NotFound, "container %q not found", req.ContainerId)
	}
	mode := b.Mode
	if mode == 0 {
		mode = 0o644
	}
	if err := writeArchive(req.Location, req.ContainerId, mode, b.Size, b.Fail != nil); err != nil {
		return status.Errorf(codes.Internal, "write archive: %v", err)
	}
	if b.Block != nil {
		select {
		case <-b.Block:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	if b.Delay > 0 {
		select {
		case <-time.After(b.Delay):
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	if b.Fail != nil {
		return b.Fail
	}
	return nil
}

// writeArchive writes what containerd writes, in miniature: spec.dump,
// config.dump and CRIU images. partial stops halfway, as a crash would.
func writeArchive(path, id string, mode os.FileMode, size int, partial bool) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	spec, _ := json.Marshal(map[string]any{
		"annotations": map[string]string{"io.kubernetes.cri.container-name": "fake", "io.kubernetes.cri.sandbox-name": "fake-pod", "io.kubernetes.cri.sandbox-namespace": "default"},
		"process":     map[string]any{"args": []string{"sleep", "3600"}},
	})
	config, _ := json.Marshal(map[string]any{"id": id, "rootfsImageName": "fake/image:1", "runtime": "fake", "createdTime": time.Now().UTC(), "checkpointedTime": time.Now().UTC()})
	files := []struct {
		name string
		data []byte
	}{
		{"spec.dump", spec},
		{"config.dump", config},
		{"checkpoint/inventory.img", []byte("inventory")},
		{"checkpoint/pages-1.img", make([]byte, size)},
		{"rootfs-diff.tar", nil},
	}
	for i, file := range files {
		if partial && i == 2 {
			return nil
		}
		if err := tw.WriteHeader(&tar.Header{Name: file.name, Mode: 0o600, Size: int64(len(file.data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(file.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// runtimeServer adapts the in-memory fake to the gRPC service.
type runtimeServer struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	s *Server
}

func (r *runtimeServer) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "fakecri", RuntimeVersion: "1.0.0", RuntimeApiVersion: "v1"}, nil
}

func (r *runtimeServer) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return r.s.Fake.Status(ctx, req.Verbose)
}

func (r *runtimeServer) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	id, err := r.s.Fake.RunPodSandbox(ctx, req.Config, req.RuntimeHandler)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, err
}

func (r *runtimeServer) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	return &runtimeapi.StopPodSandboxResponse{}, r.s.Fake.StopPodSandbox(ctx, req.PodSandboxId)
}

func (r *runtimeServer) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	return &runtimeapi.RemovePodSandboxResponse{}, r.s.Fake.RemovePodSandbox(ctx, req.PodSandboxId)
}

func (r *runtimeServer) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	return r.s.Fake.PodSandboxStatus(ctx, req.PodSandboxId, req.Verbose)
}

func (r *runtimeServer) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	items, err := r.s.Fake.ListPodSandbox(ctx, req.Filter)
	return &runtimeapi.ListPodSandboxResponse{Items: items}, err
}

// CreateContainer resolves the config's image when it arrives, as
// containerd does, and records the image ID it resolved to as the
// container's ImageRef.
func (r *runtimeServer) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	r.s.mu.Lock()
	hook := r.s.beforeCreate
	r.s.mu.Unlock()
	if hook != nil {
		hook(req.Config)
	}
	img, ok := r.s.image(req.GetConfig().GetImage().GetImage())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "failed to get image %q: not found", req.GetConfig().GetImage().GetImage())
	}
	id, err := r.s.Fake.CreateContainer(ctx, req.PodSandboxId, req.Config, req.SandboxConfig)
	if err != nil {
		return nil, err
	}
	r.s.Fake.Lock()
	if c := r.s.Fake.Containers[id]; c != nil {
		c.ImageRef = img.Id
	}
	r.s.Fake.Unlock()
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

func (r *runtimeServer) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	return &runtimeapi.StartContainerResponse{}, r.s.Fake.StartContainer(ctx, req.ContainerId)
}

func (r *runtimeServer) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	return &runtimeapi.StopContainerResponse{}, r.s.Fake.StopContainer(ctx, req.ContainerId, req.Timeout)
}

func (r *runtimeServer) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	return &runtimeapi.RemoveContainerResponse{}, r.s.Fake.RemoveContainer(ctx, req.ContainerId)
}

func (r *runtimeServer) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	items, err := r.s.Fake.ListContainers(ctx, req.Filter)
	return &runtimeapi.ListContainersResponse{Containers: items}, err
}

func (r *runtimeServer) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	return r.s.Fake.ContainerStatus(ctx, req.ContainerId, req.Verbose)
}

func (r *runtimeServer) CheckpointContainer(ctx context.Context, req *runtimeapi.CheckpointContainerRequest) (*runtimeapi.CheckpointContainerResponse, error) {
	if err := r.s.checkpoint(ctx, req); err != nil {
		return nil, err
	}
	return &runtimeapi.CheckpointContainerResponse{}, nil
}

type imageServer struct {
	runtimeapi.UnimplementedImageServiceServer
	s *Server
}

func (i *imageServer) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	img, _ := i.s.image(req.GetImage().GetImage())
	return &runtimeapi.ImageStatusResponse{Image: img}, nil
}

func (i *imageServer) ImageFsInfo(ctx context.Context, req *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{}, nil
}

func (i *imageServer) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	return nil, errors.New("the fake runtime has no registry")
}
