package integration

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"

	"knode.io/knode/test/deviceplugin"
)

const widget = "example.com/widget"

func (n *node) devicePluginsDir() string { return filepath.Join(n.rootDir(), "device-plugins") }

// startPlugin runs the stub plugin in this process and registers it with knode.
func (n *node) startPlugin(devices int, configure func(*deviceplugin.Stub)) *deviceplugin.Stub {
	n.t.Helper()
	n.eventually(30*time.Second, "kubelet.sock", func() bool {
		_, err := os.Stat(filepath.Join(n.devicePluginsDir(), "kubelet.sock"))
		return err == nil
	})
	s := deviceplugin.New(n.devicePluginsDir(), widget, "widget.sock", devices)
	if configure != nil {
		configure(s)
	}
	if err := s.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(s.Stop)
	if err := s.ReRegisterOnRestart(); err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Register(ctx); err != nil {
		n.t.Fatalf("register: %v", err)
	}
	return s
}

func (n *node) podResources() *podresourcesapi.ListPodResourcesResponse {
	n.t.Helper()
	sock := filepath.Join(n.rootDir(), "pod-resources", "kubelet.sock")
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}))
	if err != nil {
		n.t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := podresourcesapi.NewPodResourcesListerClient(conn).List(ctx, &podresourcesapi.ListPodResourcesRequest{}, grpc.WaitForReady(true))
	if err != nil {
		n.t.Fatalf("PodResources List: %v", err)
	}
	return resp
}

func widgetPod(name string, count int, command string) string {
	return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: ` + busybox + `
    command: ["sh", "-c", ` + jsonString(command) + `]
    resources:
      limits: {` + widget + `: "` + itoa(count) + `"}
`
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestDevicesIntoRealContainers(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	// A CDI spec the runtime resolves for the plugin's CDI device.
	cdiDir := n.layout().CDIDir()
	if err := os.MkdirAll(cdiDir, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := "cdiVersion: \"0.6.0\"\nkind: example.com/widget\ndevices:\n- name: dev-0\n  containerEdits:\n    env: [\"CDI_WIDGET=dev-0-from-cdi\"]\n- name: dev-1\n  containerEdits:\n    env: [\"CDI_WIDGET=dev-1-from-cdi\"]\n"
	if err := os.WriteFile(filepath.Join(cdiDir, "widget.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	share := filepath.Join(n.dir, "widget-share")
	os.MkdirAll(share, 0o755)
	os.WriteFile(filepath.Join(share, "hello"), []byte("mounted by the plugin\n"), 0o644)
	n.startKnode()
	plugin := n.startPlugin(2, func(s *deviceplugin.Stub) {
		s.PreStart = true
		s.AllocateFunc = func(ids []string) (*pluginapi.ContainerAllocateResponse, error) {
			return &pluginapi.ContainerAllocateResponse{
				Envs:       map[string]string{"WIDGETS": strings.Join(ids, ",")},
				Devices:    []*pluginapi.DeviceSpec{{HostPath: "/dev/null", ContainerPath: "/dev/widget0", Permissions: "rw"}},
				Mounts:     []*pluginapi.Mount{{HostPath: share, ContainerPath: "/widget", ReadOnly: true}},
				CdiDevices: []*pluginapi.CDIDevice{{Name: widget + "=" + ids[0]}},
			}, nil
		}
	})
	n.writeManifest("w.yaml", widgetPod("w", 1,
		`echo "WIDGETS=$WIDGETS CDI=$CDI_WIDGET"; test -c /dev/widget0 && echo device-ok; cat /widget/hello; exec sleep 3600`))
	c := n.waitRunning("default", "w", "app")
	n.eventually(20*time.Second, "the container to print what it got", func() bool {
		log := n.logFile("default", "w", "app")
		return strings.Contains(log, "WIDGETS=dev-") && strings.Contains(log, "-from-cdi") &&
			strings.Contains(log, "device-ok") && strings.Contains(log, "mounted by the plugin")
	})
	if len(plugin.PreStarts()) != 1 {
		t.Fatalf("PreStartContainer calls: %v", plugin.PreStarts())
	}
	// PodResources List shows the allocation.
	found := false
	for _, p := range n.podResources().PodResources {
		if p.Name != n.podName("w") {
			continue
		}
		for _, ctr := range p.Containers {
			for _, d := range ctr.Devices {
				found = found || (ctr.Name == "app" && d.ResourceName == widget && len(d.DeviceIds) == 1)
			}
		}
	}
	if !found {
		t.Fatalf("PodResources does not show the allocation: %v", n.podResources())
	}

	// Insufficient devices: the pod fails admission with the kubelet's reason.
	n.writeManifest("greedy.yaml", widgetPod("greedy", 5, "sleep 3600"))
	n.eventually(30*time.Second, "greedy to fail admission", func() bool {
		list, err := n.api().Pods(context.Background())
		if err != nil {
			return false
		}
		for _, p := range list.Items {
			if p.Name == n.podName("greedy") {
				return p.Status.Phase == "Failed" && p.Status.Reason == "UnexpectedAdmissionError" && strings.Contains(p.Status.Message, "requested 5")
			}
		}
		return false
	})
	if len(n.sandboxes("default", "greedy")) != 0 {
		t.Fatal("a sandbox was created for a pod that failed admission")
	}

	// Its device turning unhealthy, and the plugin restarting, leave the
	// running container alone.
	var held string
	for _, p := range n.podResources().PodResources {
		if p.Name == n.podName("w") {
			held = p.Containers[0].Devices[0].DeviceIds[0]
		}
	}
	plugin.SetHealth(held, pluginapi.Unhealthy)
	plugin.Stop()
	if err := plugin.Start(); err != nil {
		t.Fatal(err)
	}
	if err := plugin.ReRegisterOnRestart(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := plugin.Register(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	time.Sleep(2 * time.Second)
	if cs := n.containers("default", "w", "app"); len(cs) != 1 || cs[0].Id != c.Id {
		t.Fatalf("an unhealthy device or a plugin restart disturbed the running container: %v", cs)
	}
	for _, p := range n.podResources().PodResources {
		if p.Name == n.podName("w") && p.Containers[0].Devices[0].DeviceIds[0] != held {
			t.Fatalf("the pod's device changed across a plugin restart")
		}
	}
	plugin.SetHealth(held, pluginapi.Healthy)

	// knode SIGKILL + restart: same allocation from the checkpoint, no
	// container restart, the plugin re-registers.
	allocsBefore := len(plugin.Allocations())
	registrations := strings.Count(n.knodeLog(), "device plugin registered")
	n.knode.kill()
	n.startKnode()
	n.eventually(30*time.Second, "the plugin to re-register", func() bool {
		return strings.Count(n.knodeLog(), "device plugin registered") > registrations
	})
	time.Sleep(3 * time.Second)
	cs := n.containers("default", "w", "app")
	if len(cs) != 1 || cs[0].Id != c.Id {
		t.Fatalf("the container was restarted: %v", cs)
	}
	if got := len(plugin.Allocations()); got != allocsBefore {
		t.Fatalf("Allocate was called again after the restart: %d → %d", allocsBefore, got)
	}

	// The pod is removed: its device is released for another pod.
	n.removeManifest("w.yaml")
	n.writeManifest("w2.yaml", widgetPod("w2", 2, `echo "WIDGETS=$WIDGETS"; exec sleep 3600`))
	n.waitRunning("default", "w2", "app")
}

func TestStuckPluginDoesNotBlockOtherPods(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.startKnode("--device-plugin-call-timeout", "3s")
	n.startPlugin(2, func(s *deviceplugin.Stub) { s.AllocateDelay = time.Hour })
	n.writeManifest("stuck.yaml", widgetPod("stuck", 1, "sleep 3600"))
	n.writeManifest("plain.yaml", podManifest("plain", "default", "Always", "exec sleep 3600"))
	n.waitRunning("default", "plain", "main")
	n.eventually(60*time.Second, "the stuck pod to fail after the deadline", func() bool {
		list, err := n.api().Pods(context.Background())
		if err != nil {
			return false
		}
		for _, p := range list.Items {
			if p.Name == n.podName("stuck") {
				return p.Status.Phase == "Failed" && p.Status.Reason == "UnexpectedAdmissionError" && strings.Contains(p.Status.Message, "DeadlineExceeded")
			}
		}
		return false
	})
}
