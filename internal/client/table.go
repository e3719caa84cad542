package client

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	v1 "k8s.io/api/core/v1"
)

// PrintPods writes pods as `kubectl get pods -o wide` would.
func PrintPods(w io.Writer, pods []v1.Pod, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tREADY\tSTATUS\tRESTARTS\tAGE\tIP")
	for i := range pods {
		p := &pods[i]
		ready, restarts := 0, int32(0)
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Ready {
				ready++
			}
			restarts += cs.RestartCount
		}
		var start time.Time
		if p.Status.StartTime != nil {
			start = p.Status.StartTime.Time
		}
		ip := p.Status.PodIP
		if ip == "" {
			ip = "<none>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%d\t%s\t%s\n", p.Namespace, p.Name, ready, len(p.Spec.Containers),
			PodStatus(p), restarts, Age(start, now), ip)
	}
	return tw.Flush()
}

// PodStatus is kubectl's STATUS column: a container's waiting or
// termination reason when there is one, Init:n/m while initializing, else the phase.
func PodStatus(p *v1.Pod) string {
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	for i, cs := range p.Status.InitContainerStatuses {
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue
		case cs.State.Terminated != nil:
			return "Init:" + cs.State.Terminated.Reason
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
			return "Init:" + cs.State.Waiting.Reason
		case cs.State.Running != nil && p.Spec.InitContainers[min(i, len(p.Spec.InitContainers)-1)].RestartPolicy != nil:
			continue // a running sidecar does not hold initialization
		default:
			return fmt.Sprintf("Init:%d/%d", i, len(p.Spec.InitContainers))
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			reason = cs.State.Waiting.Reason
		case cs.State.Terminated != nil && cs.State.Terminated.Reason != "" && p.Status.Phase != v1.PodRunning:
			reason = cs.State.Terminated.Reason
		}
	}
	return reason
}
