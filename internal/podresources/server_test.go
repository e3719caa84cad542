package podresources

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"

	"knode.io/knode/internal/devicemanager"
)

type onePod struct{}

func (onePod) Pods() []*v1.Pod {
	p, _ := onePod{}.GetPod("default", "web")
	return []*v1.Pod{p}
}

func (onePod) GetPod(ns, name string) (*v1.Pod, bool) {
	if ns != "default" || name != "web" {
		return nil, false
	}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u1"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app"}}}}, true
}

type devices struct{}

func (devices) PodDevices(uid string) map[string][]devicemanager.ContainerDevices {
	if uid != "u1" {
		return nil
	}
	return map[string][]devicemanager.ContainerDevices{"app": {{Resource: "example.com/w", Devices: []string{"w0"}, NUMA: []int64{1}}}}
}

func (devices) AllocatableDevices() []devicemanager.ContainerDevices {
	return []devicemanager.ContainerDevices{{Resource: "example.com/w", Devices: []string{"w1"}}}
}

func TestPodResources(t *testing.T) {
	dir, _ := os.MkdirTemp("/tmp", "pr")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "kubelet.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Serve(ctx, sock, onePod{}, devices{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := podresourcesapi.NewPodResourcesListerClient(conn)
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	list, err := c.List(cctx, &podresourcesapi.ListPodResourcesRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	d := list.PodResources[0].Containers[0].Devices[0]
	if d.ResourceName != "example.com/w" || d.DeviceIds[0] != "w0" || d.Topology.Nodes[0].ID != 1 {
		t.Fatalf("list: %v", list)
	}
	if _, err := c.Get(cctx, &podresourcesapi.GetPodResourcesRequest{PodName: "nope", PodNamespace: "default"}); status.Code(err) != codes.NotFound {
		t.Fatalf("get missing: %v", err)
	}
	alloc, err := c.GetAllocatableResources(cctx, &podresourcesapi.AllocatableResourcesRequest{})
	if err != nil || alloc.Devices[0].DeviceIds[0] != "w1" {
		t.Fatalf("allocatable: %v %v", alloc, err)
	}
	// A burst beyond 10 requests at once meets the rate limit.
	limited := 0
	for i := 0; i < 50; i++ {
		if _, err := c.List(cctx, &podresourcesapi.ListPodResourcesRequest{}); status.Code(err) == codes.ResourceExhausted {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("50 requests in a burst were not rate limited")
	}
}
