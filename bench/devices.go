package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"knode.io/knode/internal/devicemanager"
	"knode.io/knode/test/deviceplugin"
)

const benchResource = "example.com/widget"

// benchDevices measures the device manager in process against the stub
// plugin over real gRPC: a large ListAndWatch message to allocatable and
// checkpoint, and the admission + Allocate path at 10,000 devices.
func benchDevices() error {
	for _, n := range []int{10000, 50000, 250000} {
		if err := deviceListUpdate(n); err != nil {
			return err
		}
	}
	return allocationOverhead(10000, 1000)
}

// rpcTimer keeps the duration of the last Allocate RPC.
type rpcTimer struct{ last time.Duration }

func (r *rpcTimer) PluginRegistered(string)                  {}
func (r *rpcTimer) AllocationDone(_ string, d time.Duration) { r.last = d }

func newManager(obs devicemanager.Observer) (*devicemanager.Manager, string, context.CancelFunc, error) {
	dir, err := os.MkdirTemp("/tmp", "kbd")
	if err != nil {
		return nil, "", nil, err
	}
	m, err := devicemanager.New(devicemanager.Options{Dir: dir, Observer: obs, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Start(ctx); err != nil {
		cancel()
		return nil, "", nil, err
	}
	return m, dir, func() { cancel(); os.RemoveAll(dir) }, nil
}

func heapMiB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / (1 << 20)
}

func deviceListUpdate(n int) error {
	m, dir, done, err := newManager(nil)
	if err != nil {
		return err
	}
	defer done()
	s := deviceplugin.New(dir, benchResource, "w.sock", 1)
	if err := s.Start(); err != nil {
		return err
	}
	defer s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Register(ctx); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	devices := make([]*pluginapi.Device, n)
	for i := range devices {
		devices[i] = &pluginapi.Device{ID: fmt.Sprintf("widget-%07d", i), Health: pluginapi.Healthy,
			Topology: &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(i % 2)}}}}
	}
	before := heapMiB()
	ckpt := filepath.Join(dir, "kubelet_internal_checkpoint")
	changed := m.Changed()
	start := time.Now()
	s.SetDevices(devices)
	<-changed
	updated := time.Since(start)
	for {
		if fi, err := os.Stat(ckpt); err == nil && fi.Size() > int64(n*10) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	written := time.Since(start)
	fmt.Printf("%7d devices: ListAndWatch message -> allocatable updated %s, checkpoint written %s, heap +%.1f MiB\n",
		n, ms(updated), ms(written), heapMiB()-before)
	return nil
}

func allocationOverhead(devices, pods int) error {
	timer := &rpcTimer{}
	m, dir, done, err := newManager(timer)
	if err != nil {
		return err
	}
	defer done()
	s := deviceplugin.New(dir, benchResource, "w.sock", devices)
	if err := s.Start(); err != nil {
		return err
	}
	defer s.Stop()
	ctx := context.Background()
	if err := s.Register(ctx); err != nil {
		return err
	}
	for {
		if r := m.Resources(); len(r) == 1 && r[0].Allocatable == int64(devices) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var total, own durations
	for i := 0; i < pods; i++ {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: types.UID(fmt.Sprintf("uid-%d", i))},
			Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", Resources: v1.ResourceRequirements{
				Limits: v1.ResourceList{benchResource: *resource.NewQuantity(1, resource.DecimalSI)}}}}}}
		start := time.Now()
		if err := m.Allocate(ctx, p); err != nil {
			return err
		}
		took := time.Since(start)
		total = append(total, took)
		own = append(own, took-timer.last)
	}
	fmt.Printf("admission + Allocate at %d devices, %d pods one device each: p50 %s p99 %s with the Allocate round trip to the plugin; knode's own part p50 %s p99 %s\n",
		devices, pods, ms(total.pct(.5)), ms(total.pct(.99)), ms(own.pct(.5)), ms(own.pct(.99)))
	return nil
}
