package pods

import (
	"context"
	"errors"
	"fmt"
	"os"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/crispec"
)

// LogDir is the kubelet's per-pod log directory: <root>/<ns>_<name>_<uid>.
func LogDir(root string, pod *v1.Pod) string { return crispec.LogDir(root, pod) }

// sandboxConfig builds the pod's CRI sandbox config on the runtime
// handler with the host's resolv.conf as it is now, and the pod's user
// namespace, allocated the first time.
func (d *podFiles) sandboxConfig(pod *v1.Pod, attempt uint32, handler string) (*runtimeapi.PodSandboxConfig, error) {
	hostDNS, err := d.hostDNS()
	if err != nil {
		return nil, err
	}
	cfg, err := crispec.Sandbox(pod, attempt, d.node, hostDNS)
	if err != nil {
		return nil, err
	}
	userns, err := d.userNamespace(pod, handler)
	if err != nil {
		return nil, err
	}
	crispec.SandboxUserNamespace(cfg, userns)
	return cfg, nil
}

// userNamespace is the pod's user namespace: nil for the host's.
func (d *podFiles) userNamespace(pod *v1.Pod, handler string) (*runtimeapi.UserNamespace, error) {
	if d.userns != nil {
		return d.userns.GetOrCreate(pod, handler)
	}
	if pod.Spec.HostUsers != nil && !*pod.Spec.HostUsers {
		return nil, errors.New("can't set `spec.hostUsers: false`: knode's user namespaces are not set up")
	}
	return nil, nil
}

// retainUserNamespaces frees the ranges of pods neither declared nor
// running, once every source has spoken.
func (d *podFiles) retainUserNamespaces(keep map[types.UID]bool) {
	if d.userns == nil {
		return
	}
	if err := d.userns.Retain(keep); err != nil {
		d.log.Warn("release user namespaces of pods gone while knode was down", "err", err)
	}
}

// releaseUserNamespace frees the pod's ID range once nothing of it runs.
func (d *podFiles) releaseUserNamespace(uid types.UID) {
	if d.userns == nil {
		return
	}
	if err := d.userns.Release(uid); err != nil {
		d.log.Warn("release pod user namespace", "uid", uid, "err", err)
	}
}

// publishDNSEvents tells of what the kubelet warns about when it composes
// a new sandbox's DNS: ClusterFirst without cluster DNS
// (MissingClusterDNS), limits that cut the pod's configuration
// (DNSConfigForming).
func (d *workerDeps) publishDNSEvents(pod *v1.Pod) {
	hostDNS, err := d.files.hostDNS()
	if err != nil {
		return
	}
	_, events := crispec.DNS(pod, hostDNS, d.node)
	for _, ev := range events {
		if ev.Node {
			// Only a cluster node has an object to record it on.
			if n, ok := d.Events.(NodeEventRecorder); ok {
				n.NodeEvent(v1.EventTypeWarning, ev.Reason, ev.Message)
			}
			continue
		}
		d.log.Warn("pod DNS", "pod", podRef(pod, nil), "reason", ev.Reason, "message", ev.Message)
		d.Events.Event(pod, v1.EventTypeWarning, ev.Reason, ev.Message)
	}
}

// NodeEventRecorder is an EventRecorder that also records events about
// the node (in cluster mode, on the Node object).
type NodeEventRecorder interface {
	NodeEvent(eventType, reason, message string)
}

// hostDNS reads the node's resolv.conf (--resolv-conf); nil when none is
// configured. A file that cannot be read or parsed fails the sandbox, as
// with the kubelet.
func (d *podFiles) hostDNS() (*runtimeapi.DNSConfig, error) {
	if d.ResolvConf == "" {
		return nil, nil
	}
	return readResolvConf(d.ResolvConf)
}

func readResolvConf(path string) (*runtimeapi.DNSConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("could not open resolv conf file: %w", err)
	}
	defer f.Close()
	cfg, err := crispec.ParseResolvConf(f)
	if err != nil {
		return nil, fmt.Errorf("Encountered error while parsing resolv conf file. Error: %w", err)
	}
	return cfg, nil
}

// runtimeHandler is the CRI runtime handler of the pod's runtimeClassName
// ("" for none), as the kubelet's runtimeclass manager resolves it. Without
// an API server knode knows no RuntimeClass: the kubelet would then run
// the pod under the default handler, which is not what the pod asked for.
func (d *criAccess) runtimeHandler(ctx context.Context, pod *v1.Pod) (string, error) {
	name := pod.Spec.RuntimeClassName
	if name == nil || *name == "" {
		return "", nil
	}
	if d.runtimeClasses == nil {
		return "", fmt.Errorf("runtimeclass.node.k8s.io %q not found: without an API server knode knows no RuntimeClass", *name)
	}
	return d.runtimeClasses.RuntimeHandler(ctx, *name)
}
