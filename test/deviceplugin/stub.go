// Package deviceplugin is a device plugin for tests, like the kubelet's own
// test stub: a real gRPC server on a unix socket speaking the device plugin
// API v1beta1, whose behaviour tests control: devices, health, topology,
// preferred allocation, pre-start, delays, errors, crashes, and
// re-registration when kubelet.sock is recreated.
package deviceplugin

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Stub is one running plugin.
type Stub struct {
	pluginapi.UnimplementedDevicePluginServer

	Resource string
	Dir      string // the device plugins directory
	Endpoint string // socket file name inside Dir
	// PreferredAllocation and PreStart are the options the plugin advertises.
	PreferredAllocation bool
	PreStart            bool
	// Version registered; empty means v1beta1.
	Version string

	mu      sync.Mutex
	devices []*pluginapi.Device
	update  chan struct{}
	// Allocate answers with the response it returns; nil answers env
	// STUB_DEVICES=<ids>.
	AllocateFunc func(ids []string) (*pluginapi.ContainerAllocateResponse, error)
	// AllocateDelay holds every Allocate call.
	AllocateDelay time.Duration
	// PreferFunc answers GetPreferredAllocation.
	PreferFunc func(available, mustInclude []string, size int) []string
	// OptionsErr makes GetDevicePluginOptions fail.
	OptionsErr error
	// PreStartErr makes PreStartContainer fail.
	PreStartErr error
	// BreakStreams ends that many ListAndWatch streams after their first
	// message, as a flaky plugin would.
	BreakStreams int

	allocations [][]string
	preStarts   [][]string
	server      *grpc.Server
	stopWatch   context.CancelFunc
}

// New prepares a stub with n healthy devices named <prefix>-0 ....
func New(dir, resource, endpoint string, n int) *Stub {
	s := &Stub{Resource: resource, Dir: dir, Endpoint: endpoint, update: make(chan struct{}, 1)}
	for i := 0; i < n; i++ {
		s.devices = append(s.devices, &pluginapi.Device{ID: fmt.Sprintf("dev-%d", i), Health: pluginapi.Healthy})
	}
	return s
}

// SetDevices replaces the device list and tells ListAndWatch.
func (s *Stub) SetDevices(devices []*pluginapi.Device) {
	s.mu.Lock()
	s.devices = devices
	s.mu.Unlock()
	select {
	case s.update <- struct{}{}:
	default:
	}
}

// SetHealth changes one device's health.
func (s *Stub) SetHealth(id, health string) {
	s.mu.Lock()
	var next []*pluginapi.Device
	for _, d := range s.devices {
		c := &pluginapi.Device{ID: d.ID, Health: d.Health, Topology: d.Topology}
		if c.ID == id {
			c.Health = health
		}
		next = append(next, c)
	}
	s.mu.Unlock()
	s.SetDevices(next)
}

// Allocations returns the device sets Allocate was asked for.
func (s *Stub) Allocations() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]string(nil), s.allocations...)
}

// PreStarts returns the device sets PreStartContainer was called with.
func (s *Stub) PreStarts() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]string(nil), s.preStarts...)
}

// Start serves the plugin socket.
func (s *Stub) Start() error {
	sock := filepath.Join(s.Dir, s.Endpoint)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	s.server = grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(s.server, s)
	go func() { _ = s.server.Serve(ln) }()
	return nil
}

// Stop ends the server (a crash, as far as the manager can tell) and removes the socket.
func (s *Stub) Stop() {
	if s.stopWatch != nil {
		s.stopWatch()
	}
	if s.server != nil {
		s.server.Stop()
	}
	_ = os.Remove(filepath.Join(s.Dir, s.Endpoint))
}

// Register calls Registration.Register on kubelet.sock.
func (s *Stub) Register(ctx context.Context) error {
	conn, err := grpc.NewClient("unix://"+filepath.Join(s.Dir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(s.Dir, "kubelet.sock"))
		}))
	if err != nil {
		return err
	}
	defer conn.Close()
	version := s.Version
	if version == "" {
		version = pluginapi.Version
	}
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: version, Endpoint: s.Endpoint, ResourceName: s.Resource, Options: s.options(),
	}, grpc.WaitForReady(true))
	return err
}

// ReRegisterOnRestart registers again whenever kubelet.sock is recreated,
// as real plugins do.
func (s *Stub) ReRegisterOnRestart() error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	if err := w.Add(s.Dir); err != nil {
		w.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopWatch = cancel
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-w.Events:
				if filepath.Base(ev.Name) == "kubelet.sock" && ev.Op&fsnotify.Create != 0 {
					// The agent removed every socket at its start: serve anew, then register.
					s.server.Stop()
					if err := s.Start(); err != nil {
						continue
					}
					rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
					_ = s.Register(rctx)
					rcancel()
				}
			case <-w.Errors:
			}
		}
	}()
	return nil
}

func (s *Stub) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	if s.OptionsErr != nil {
		return nil, s.OptionsErr
	}
	return s.options(), nil
}

func (s *Stub) options() *pluginapi.DevicePluginOptions {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: s.PreferredAllocation, PreStartRequired: s.PreStart}
}

func (s *Stub) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	for {
		s.mu.Lock()
		devices := append([]*pluginapi.Device(nil), s.devices...)
		s.mu.Unlock()
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: devices}); err != nil {
			return err
		}
		s.mu.Lock()
		broken := s.BreakStreams > 0
		if broken {
			s.BreakStreams--
		}
		s.mu.Unlock()
		if broken {
			return fmt.Errorf("stream broken on purpose")
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-s.update:
		}
	}
}

func (s *Stub) GetPreferredAllocation(ctx context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, cr := range req.ContainerRequests {
		var ids []string
		if s.PreferFunc != nil {
			ids = s.PreferFunc(cr.AvailableDeviceIDs, cr.MustIncludeDeviceIDs, int(cr.AllocationSize))
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}

func (s *Stub) Allocate(ctx context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	if s.AllocateDelay > 0 {
		select {
		case <-time.After(s.AllocateDelay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	resp := &pluginapi.AllocateResponse{}
	for _, cr := range req.ContainerRequests {
		ids := append([]string(nil), cr.DevicesIds...)
		sort.Strings(ids)
		s.mu.Lock()
		s.allocations = append(s.allocations, ids)
		s.mu.Unlock()
		var car *pluginapi.ContainerAllocateResponse
		if s.AllocateFunc != nil {
			var err error
			if car, err = s.AllocateFunc(ids); err != nil {
				return nil, err
			}
		} else {
			car = &pluginapi.ContainerAllocateResponse{Envs: map[string]string{"STUB_DEVICES": fmt.Sprint(ids)}}
		}
		resp.ContainerResponses = append(resp.ContainerResponses, car)
	}
	return resp, nil
}

func (s *Stub) PreStartContainer(ctx context.Context, req *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	s.mu.Lock()
	s.preStarts = append(s.preStarts, req.DevicesIds)
	s.mu.Unlock()
	if s.PreStartErr != nil {
		return nil, s.PreStartErr
	}
	return &pluginapi.PreStartContainerResponse{}, nil
}
