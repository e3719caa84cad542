package pods

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/crispec"
)

// runtimePod is what the runtime holds for one pod UID, newest first.
type runtimePod struct {
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
}

func (rp *runtimePod) fingerprint() string {
	var b strings.Builder
	for _, s := range rp.sandboxes {
		fmt.Fprintf(&b, "s%s:%d;", s.Id, s.State)
	}
	for _, c := range rp.containers {
		fmt.Fprintf(&b, "c%s:%d;", c.Id, c.State)
	}
	return b.String()
}

// newestSandbox is the sandbox with the highest attempt (then newest).
func (rp *runtimePod) newestSandbox() *runtimeapi.PodSandbox {
	if rp == nil || len(rp.sandboxes) == 0 {
		return nil
	}
	return rp.sandboxes[0]
}

// instances returns the containers named name in sandbox sandboxID (all
// sandboxes if empty), newest first.
func (rp *runtimePod) instances(name, sandboxID string) []*runtimeapi.Container {
	if rp == nil {
		return nil
	}
	var out []*runtimeapi.Container
	for _, c := range rp.containers {
		if c.GetMetadata().GetName() == name && (sandboxID == "" || c.PodSandboxId == sandboxID) {
			out = append(out, c)
		}
	}
	return out
}

// restartCount reads the kubelet's annotation from a container.
func restartCount(c *runtimeapi.Container) int {
	if c == nil {
		return 0
	}
	if n, err := strconv.Atoi(c.Annotations[crispec.AnnotationRestartCount]); err == nil {
		return n
	}
	return int(c.GetMetadata().GetAttempt())
}

// listRuntime lists the sandboxes and containers of the knode named node,
// grouped by pod UID; uid narrows it to one pod.
func listRuntime(ctx context.Context, rt Runtime, node string, uid *types.UID) (map[types.UID]*runtimePod, error) {
	selector := OwnerSelector(node)
	if uid != nil {
		selector[crispec.LabelPodUID] = string(*uid)
	}
	sandboxes, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list pod sandboxes: %w", err)
	}
	containers, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := map[types.UID]*runtimePod{}
	get := func(u string) *runtimePod {
		rp := out[types.UID(u)]
		if rp == nil {
			rp = &runtimePod{}
			out[types.UID(u)] = rp
		}
		return rp
	}
	for _, s := range sandboxes {
		if u := s.Labels[crispec.LabelPodUID]; u != "" {
			rp := get(u)
			rp.sandboxes = append(rp.sandboxes, s)
		}
	}
	for _, c := range containers {
		if u := c.Labels[crispec.LabelPodUID]; u != "" {
			rp := get(u)
			rp.containers = append(rp.containers, c)
		}
	}
	for _, rp := range out {
		sort.SliceStable(rp.sandboxes, func(i, j int) bool {
			a, b := rp.sandboxes[i], rp.sandboxes[j]
			if a.GetMetadata().GetAttempt() != b.GetMetadata().GetAttempt() {
				return a.GetMetadata().GetAttempt() > b.GetMetadata().GetAttempt()
			}
			return a.CreatedAt > b.CreatedAt
		})
		sort.SliceStable(rp.containers, func(i, j int) bool {
			a, b := rp.containers[i], rp.containers[j]
			if restartCount(a) != restartCount(b) {
				return restartCount(a) > restartCount(b)
			}
			return a.CreatedAt > b.CreatedAt
		})
	}
	return out, nil
}

// statusCache keeps ContainerStatus answers per container and state,
// sandbox IPs per sandbox and the termination messages of exited
// containers: each is fixed once observed, so each is asked for (or read)
// once instead of at every sync.
type statusCache struct {
	mu         sync.Mutex
	containers map[string]*runtimeapi.ContainerStatus // key: id/state
	sandboxIPs map[string][]string
	messages   map[string]string // key: id of an exited container
}

func newStatusCache() *statusCache {
	return &statusCache{containers: map[string]*runtimeapi.ContainerStatus{}, sandboxIPs: map[string][]string{}, messages: map[string]string{}}
}

// terminationMessage is an exited container's message, made by read the
// first time and kept while the container exists: it exited, so nothing it
// runs writes its termination file or log any more. A read that failed
// (ok false) is tried again next time.
func (c *statusCache) terminationMessage(id string, read func() (msg string, ok bool)) string {
	c.mu.Lock()
	msg, found := c.messages[id]
	c.mu.Unlock()
	if found {
		return msg
	}
	msg, ok := read()
	if ok {
		c.mu.Lock()
		c.messages[id] = msg
		c.mu.Unlock()
	}
	return msg
}

func (c *statusCache) containerStatus(ctx context.Context, rt Runtime, ctr *runtimeapi.Container) (*runtimeapi.ContainerStatus, error) {
	key := ctr.Id + "/" + ctr.State.String()
	c.mu.Lock()
	st := c.containers[key]
	c.mu.Unlock()
	if st != nil {
		return st, nil
	}
	resp, err := rt.ContainerStatus(ctx, ctr.Id, false)
	if err != nil {
		return nil, fmt.Errorf("container status %s: %w", ctr.Id, err)
	}
	st = resp.GetStatus()
	if st == nil {
		return nil, fmt.Errorf("container status %s: runtime returned none", ctr.Id)
	}
	// Only settled states are cached: a created container's status changes.
	if st.State == ctr.State && st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		c.mu.Lock()
		c.containers[key] = st
		c.mu.Unlock()
	}
	return st, nil
}

func (c *statusCache) sandboxIPsFor(ctx context.Context, rt Runtime, sb *runtimeapi.PodSandbox) ([]string, error) {
	c.mu.Lock()
	ips, ok := c.sandboxIPs[sb.Id]
	c.mu.Unlock()
	if ok {
		return ips, nil
	}
	resp, err := rt.PodSandboxStatus(ctx, sb.Id, false)
	if err != nil {
		return nil, fmt.Errorf("sandbox status %s: %w", sb.Id, err)
	}
	if n := resp.GetStatus().GetNetwork(); n != nil {
		if n.Ip != "" {
			ips = append(ips, n.Ip)
		}
		for _, extra := range n.AdditionalIps {
			ips = append(ips, extra.Ip)
		}
	}
	if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
		c.mu.Lock()
		c.sandboxIPs[sb.Id] = ips
		c.mu.Unlock()
	}
	return ips, nil
}

// retain forgets entries for containers and sandboxes no longer in snap.
func (c *statusCache) retain(snap map[types.UID]*runtimePod) {
	live := map[string]bool{}
	for _, rp := range snap {
		for _, s := range rp.sandboxes {
			live[s.Id] = true
		}
		for _, ctr := range rp.containers {
			live[ctr.Id] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for key := range c.containers {
		if id, _, _ := strings.Cut(key, "/"); !live[id] {
			delete(c.containers, key)
		}
	}
	for id := range c.sandboxIPs {
		if !live[id] {
			delete(c.sandboxIPs, id)
		}
	}
	for id := range c.messages {
		if !live[id] {
			delete(c.messages, id)
		}
	}
}
