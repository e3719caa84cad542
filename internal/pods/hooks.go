package pods

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/prober"
)

// minGraceAfterPreStop is what StopContainer still gets after a preStop
// hook used up the grace period: the kubelet's 2 seconds.
const minGraceAfterPreStop = 2

// runHook runs a container's postStart or preStop handler: exec in the
// container, an HTTP GET (2xx and 3xx pass, as probes), or a sleep.
func (d *hookRunner) runHook(ctx context.Context, h *v1.LifecycleHandler, c *v1.Container, containerID, podIP string) error {
	switch {
	case h.Exec != nil:
		timeout := time.Minute
		if deadline, ok := ctx.Deadline(); ok {
			timeout = time.Until(deadline)
		}
		stdout, stderr, err := d.Runtime.ExecSync(ctx, containerID, h.Exec.Command, timeout)
		if err != nil {
			return fmt.Errorf("command %q: %w: %s", strings.Join(h.Exec.Command, " "), err, strings.TrimSpace(string(stdout)+string(stderr)))
		}
		return nil
	case h.HTTPGet != nil:
		timeout := int32(30)
		if deadline, ok := ctx.Deadline(); ok {
			timeout = int32(max(time.Until(deadline)/time.Second, 1))
		}
		r := d.Prober.Probe(ctx, &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: h.HTTPGet}, TimeoutSeconds: timeout},
			prober.Target{ContainerID: containerID, PodIP: podIP, Ports: c.Ports})
		if !r.Success {
			return errors.New(r.Output)
		}
		return nil
	case h.Sleep != nil:
		select {
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case h.TCPSocket != nil:
		return errors.New("tcpSocket is not supported as a lifecycle handler")
	}
	return errors.New("the lifecycle handler has no action")
}

// specContainer finds a pod's app or init container by name.
func specContainer(pod *v1.Pod, name string) *v1.Container {
	if pod == nil {
		return nil
	}
	for _, list := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// stopContainer stops a container the kubelet's way: its preStop hook
// first, within the grace period, then StopContainer with what is left of
// it (at least 2 s).
func (d *hookRunner) stopContainer(ctx context.Context, pod *v1.Pod, ct *runtimeapi.Container, grace int64, podIP string) {
	if c := specContainer(pod, ct.GetMetadata().GetName()); c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil &&
		ct.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		start := time.Now()
		hctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
		err := d.runHook(hctx, c.Lifecycle.PreStop, c, ct.Id, podIP)
		cancel()
		if err != nil {
			d.Events.Event(pod, v1.EventTypeWarning, "FailedPreStopHook", fmt.Sprintf("PreStopHook failed: %v", err))
			d.log.Warn("preStop hook failed", "pod", podRef(pod, nil), "container", c.Name, "err", err)
		}
		grace = max(grace-int64(time.Since(start)/time.Second), minGraceAfterPreStop)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second+d.RequestTimeout)
	defer cancel()
	if err := d.Runtime.StopContainer(cctx, ct.Id, grace); err != nil {
		d.log.Warn("stop container failed", "container", ct.Id, "err", err)
	}
}
