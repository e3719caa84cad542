// Package podresources serves the kubelet's PodResources API v1 on
// <root-dir>/pod-resources/kubelet.sock, which monitoring agents (GPU
// exporters and the like) read to map devices to pods.
package podresources

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"

	"knode.io/knode/internal/devicemanager"
)

// The kubelet's limits: 100 requests per second, bursts of 10.
const (
	rateLimit = 100
	rateBurst = 10
)

// Pods lists the pods knode runs.
type Pods interface {
	Pods() []*v1.Pod
	GetPod(namespace, name string) (*v1.Pod, bool)
}

// Devices tells which devices containers hold and which are allocatable.
type Devices interface {
	PodDevices(uid string) map[string][]devicemanager.ContainerDevices
	AllocatableDevices() []devicemanager.ContainerDevices
}

// Server implements PodResourcesLister.
type Server struct {
	podresourcesapi.UnimplementedPodResourcesListerServer
	pods    Pods
	devices Devices
}

// Serve listens on socket until ctx ends.
func Serve(ctx context.Context, socket string, pods Pods, devices Devices, log *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(socket), 0o750); err != nil {
		return fmt.Errorf("create pod-resources directory: %w", err)
	}
	_ = os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", socket, err)
	}
	limiter := rate.NewLimiter(rateLimit, rateBurst)
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !limiter.Allow() {
			return nil, status.Error(codes.ResourceExhausted, "rejected by the pod resources API rate limit (100 requests/s, burst 10)")
		}
		return h(ctx, req)
	}))
	podresourcesapi.RegisterPodResourcesListerServer(srv, &Server{pods: pods, devices: devices})
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	log.Info("pod resources API serving", "socket", socket)
	if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("pod resources API: %w", err)
	}
	return nil
}

// List reports every pod with its containers' devices.
func (s *Server) List(ctx context.Context, _ *podresourcesapi.ListPodResourcesRequest) (*podresourcesapi.ListPodResourcesResponse, error) {
	resp := &podresourcesapi.ListPodResourcesResponse{}
	for _, p := range s.pods.Pods() {
		resp.PodResources = append(resp.PodResources, s.podResources(p))
	}
	return resp, nil
}

// Get reports one pod.
func (s *Server) Get(ctx context.Context, req *podresourcesapi.GetPodResourcesRequest) (*podresourcesapi.GetPodResourcesResponse, error) {
	p, ok := s.pods.GetPod(req.PodNamespace, req.PodName)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "pod %s/%s not found", req.PodNamespace, req.PodName)
	}
	return &podresourcesapi.GetPodResourcesResponse{PodResources: s.podResources(p)}, nil
}

// GetAllocatableResources reports every healthy device of connected plugins.
func (s *Server) GetAllocatableResources(ctx context.Context, _ *podresourcesapi.AllocatableResourcesRequest) (*podresourcesapi.AllocatableResourcesResponse, error) {
	return &podresourcesapi.AllocatableResourcesResponse{Devices: toAPI(s.devices.AllocatableDevices())}, nil
}

func (s *Server) podResources(p *v1.Pod) *podresourcesapi.PodResources {
	byContainer := s.devices.PodDevices(string(p.UID))
	pr := &podresourcesapi.PodResources{Name: p.Name, Namespace: p.Namespace}
	for _, list := range [][]v1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range list {
			pr.Containers = append(pr.Containers, &podresourcesapi.ContainerResources{Name: c.Name, Devices: toAPI(byContainer[c.Name])})
		}
	}
	return pr
}

func toAPI(list []devicemanager.ContainerDevices) []*podresourcesapi.ContainerDevices {
	out := make([]*podresourcesapi.ContainerDevices, 0, len(list))
	for _, d := range list {
		cd := &podresourcesapi.ContainerDevices{ResourceName: d.Resource, DeviceIds: d.Devices}
		if len(d.NUMA) > 0 {
			cd.Topology = &podresourcesapi.TopologyInfo{}
			for _, n := range d.NUMA {
				cd.Topology.Nodes = append(cd.Topology.Nodes, &podresourcesapi.NUMANode{ID: n})
			}
		}
		out = append(out, cd)
	}
	return out
}
