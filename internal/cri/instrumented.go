package cri

import (
	"context"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Observer records one runtime operation; operation names are the kubelet's
// (run_podsandbox, create_container, checkpoint_container, ...).
type Observer func(operation string, start time.Time, err error)

// Instrument makes every CRI call that knode issues report to observe, as the
// kubelet's instrumented services do for kubelet_runtime_operations_*.
func (r *Runtime) Instrument(observe Observer) {
	r.RuntimeService = &instrumentedRuntime{RuntimeService: r.RuntimeService, observe: observe}
	r.ImageManagerService = &instrumentedImages{ImageManagerService: r.ImageManagerService, observe: observe}
}

type instrumentedRuntime struct {
	internalapi.RuntimeService
	observe Observer
}

func (in *instrumentedRuntime) Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error) {
	start := time.Now()
	resp, err := in.RuntimeService.Status(ctx, verbose)
	in.observe("status", start, err)
	return resp, err
}

func (in *instrumentedRuntime) RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error) {
	start := time.Now()
	id, err := in.RuntimeService.RunPodSandbox(ctx, config, runtimeHandler)
	in.observe("run_podsandbox", start, err)
	return id, err
}

func (in *instrumentedRuntime) StopPodSandbox(ctx context.Context, id string) error {
	start := time.Now()
	err := in.RuntimeService.StopPodSandbox(ctx, id)
	in.observe("stop_podsandbox", start, err)
	return err
}

func (in *instrumentedRuntime) RemovePodSandbox(ctx context.Context, id string) error {
	start := time.Now()
	err := in.RuntimeService.RemovePodSandbox(ctx, id)
	in.observe("remove_podsandbox", start, err)
	return err
}

func (in *instrumentedRuntime) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	start := time.Now()
	resp, err := in.RuntimeService.PodSandboxStatus(ctx, id, verbose)
	in.observe("podsandbox_status", start, err)
	return resp, err
}

func (in *instrumentedRuntime) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	start := time.Now()
	list, err := in.RuntimeService.ListPodSandbox(ctx, filter)
	in.observe("list_podsandbox", start, err)
	return list, err
}

func (in *instrumentedRuntime) CreateContainer(ctx context.Context, sandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	start := time.Now()
	id, err := in.RuntimeService.CreateContainer(ctx, sandboxID, config, sandboxConfig)
	in.observe("create_container", start, err)
	return id, err
}

func (in *instrumentedRuntime) StartContainer(ctx context.Context, id string) error {
	start := time.Now()
	err := in.RuntimeService.StartContainer(ctx, id)
	in.observe("start_container", start, err)
	return err
}

func (in *instrumentedRuntime) StopContainer(ctx context.Context, id string, timeout int64) error {
	start := time.Now()
	err := in.RuntimeService.StopContainer(ctx, id, timeout)
	in.observe("stop_container", start, err)
	return err
}

func (in *instrumentedRuntime) RemoveContainer(ctx context.Context, id string) error {
	start := time.Now()
	err := in.RuntimeService.RemoveContainer(ctx, id)
	in.observe("remove_container", start, err)
	return err
}

func (in *instrumentedRuntime) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	start := time.Now()
	list, err := in.RuntimeService.ListContainers(ctx, filter)
	in.observe("list_containers", start, err)
	return list, err
}

func (in *instrumentedRuntime) ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	start := time.Now()
	resp, err := in.RuntimeService.ContainerStatus(ctx, id, verbose)
	in.observe("container_status", start, err)
	return resp, err
}

func (in *instrumentedRuntime) CheckpointContainer(ctx context.Context, options *runtimeapi.CheckpointContainerRequest) error {
	start := time.Now()
	err := in.RuntimeService.CheckpointContainer(ctx, options)
	in.observe("checkpoint_container", start, err)
	return err
}

type instrumentedImages struct {
	internalapi.ImageManagerService
	observe Observer
}

func (in *instrumentedImages) ImageStatus(ctx context.Context, image *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	start := time.Now()
	resp, err := in.ImageManagerService.ImageStatus(ctx, image, verbose)
	in.observe("image_status", start, err)
	return resp, err
}

func (in *instrumentedImages) PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	start := time.Now()
	ref, err := in.ImageManagerService.PullImage(ctx, image, auth, sandboxConfig)
	in.observe("pull_image", start, err)
	return ref, err
}

func (in *instrumentedRuntime) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) ([]byte, []byte, error) {
	start := time.Now()
	stdout, stderr, err := in.RuntimeService.ExecSync(ctx, containerID, cmd, timeout)
	in.observe("exec_sync", start, err)
	return stdout, stderr, err
}

func (in *instrumentedRuntime) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	start := time.Now()
	resp, err := in.RuntimeService.Exec(ctx, req)
	in.observe("exec", start, err)
	return resp, err
}

func (in *instrumentedRuntime) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	start := time.Now()
	resp, err := in.RuntimeService.Attach(ctx, req)
	in.observe("attach", start, err)
	return resp, err
}

func (in *instrumentedRuntime) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	start := time.Now()
	resp, err := in.RuntimeService.PortForward(ctx, req)
	in.observe("port_forward", start, err)
	return resp, err
}
