package devicemanager

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"knode.io/knode/internal/devicemanager/checkpoint"
	"knode.io/knode/internal/podsource"
)

// AdmissionError is a pod the device manager cannot admit; the pod fails
// with the kubelet's reason UnexpectedAdmissionError.
type AdmissionError struct{ Message string }

func (e *AdmissionError) Error() string { return e.Message }

// Reason is the kubelet's pod status reason for this failure.
func (e *AdmissionError) Reason() string { return "UnexpectedAdmissionError" }

// ErrPluginNotReady means the resource is known (registered before, or in
// the checkpoint) but its plugin is not connected now: the pod waits for it
// instead of failing, until the grace period says the plugin is gone.
var ErrPluginNotReady = errors.New("device plugin not connected yet")

func admissionError(format string, args ...any) error {
	return &AdmissionError{Message: fmt.Sprintf(format, args...)}
}

// Allocate gives every container of pod the devices its limits ask for,
// init containers first. Existing allocations (restarts, adoption after a
// knode restart) are reused without calling the plugin.
func (m *Manager) Allocate(ctx context.Context, pod *v1.Pod) error {
	uid := string(pod.UID)
	m.mu.Lock()
	delete(m.restored, uid) // the pod is back: Release frees its devices
	m.mu.Unlock()
	// Devices of finished init containers are handed on to later containers;
	// restartable (sidecar) init containers keep theirs.
	reusable := map[string]map[string]bool{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if err := m.allocateContainer(ctx, uid, c, reusable); err != nil {
			return err
		}
		sidecar := podsource.IsSidecar(c)
		m.mu.Lock()
		for res, al := range m.allocs[uid][c.Name] {
			if reusable[res] == nil {
				reusable[res] = map[string]bool{}
			}
			for _, id := range al.ids() {
				// A finished init container hands its devices on; a running
				// sidecar holds its own for the pod's life.
				reusable[res][id] = !sidecar
			}
		}
		m.mu.Unlock()
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if err := m.allocateContainer(ctx, uid, c, reusable); err != nil {
			return err
		}
		m.mu.Lock()
		for res, al := range m.allocs[uid][c.Name] {
			for _, id := range al.ids() {
				delete(reusable[res], id) // app containers run together: no sharing
			}
		}
		m.mu.Unlock()
	}
	return nil
}

// deviceRequests lists a container's device resources and counts, checking
// that requests equal limits as the API server would.
func deviceRequests(c *v1.Container) (map[string]int, error) {
	out := map[string]int{}
	for name, q := range c.Resources.Limits {
		if !isDeviceResource(string(name)) {
			continue
		}
		if req, ok := c.Resources.Requests[name]; ok && req.Cmp(q) != 0 {
			return nil, admissionError("container %s: requests and limits of %s must be equal", c.Name, name)
		}
		if n := int(q.Value()); n > 0 {
			out[string(name)] = n
		}
	}
	return out, nil
}

func (m *Manager) allocateContainer(ctx context.Context, uid string, c *v1.Container, reusable map[string]map[string]bool) error {
	requests, err := deviceRequests(c)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(requests))
	for name := range requests {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := m.allocateResource(ctx, uid, c.Name, name, requests[name], reusable[name]); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) allocateResource(ctx context.Context, uid, container, name string, needed int, reusable map[string]bool) error {
	m.mu.Lock()
	if al := m.allocs.get(uid, container, name); al != nil && len(al.ids()) == needed {
		m.mu.Unlock()
		return nil
	}
	r := m.resources[name]
	if r == nil {
		m.mu.Unlock()
		return admissionError("resource %s is not registered by any device plugin", name)
	}
	m.mu.Unlock()
	// One allocation per resource at a time: devices are chosen and recorded
	// consistently, and a stuck plugin holds up only pods that need it.
	r.allocMu.Lock()
	defer r.allocMu.Unlock()

	m.mu.Lock()
	ep := r.endpoint
	if ep == nil || !r.disconnectedAt.IsZero() {
		wait := len(r.devices) > 0 || time.Since(r.disconnectedAt) < m.opts.GracePeriod
		m.mu.Unlock()
		if wait {
			return fmt.Errorf("%w: %s", ErrPluginNotReady, name)
		}
		return admissionError("the device plugin for %s is not connected", name)
	}
	inUse := m.used[name]
	preferred := ep.options.GetGetPreferredAllocationAvailable()
	// Without a plugin preference or devices to hand on, the scan stops as
	// soon as one NUMA node can give what is needed: with 10,000 devices an
	// allocation then looks at few of them, and builds no list of all.
	var fromNode []string
	if !preferred && len(reusable) == 0 {
		perNode := map[int64][]string{}
		for _, d := range r.order {
			if d.healthy && !inUse[d.id] {
				perNode[d.numa] = append(perNode[d.numa], d.id)
				if len(perNode[d.numa]) == needed {
					fromNode = perNode[d.numa]
					break
				}
			}
		}
	}
	var available, mustInclude []string
	healthy := 0
	if fromNode == nil {
		for _, d := range r.order {
			if !d.healthy {
				continue
			}
			healthy++
			switch {
			case len(reusable) > 0 && reusable[d.id]:
				mustInclude = append(mustInclude, d.id)
				available = append(available, d.id)
			case !inUse[d.id]:
				available = append(available, d.id)
			}
		}
	}
	devices := r.devices
	m.mu.Unlock()

	if fromNode == nil && len(available) < needed {
		return admissionError("requested %d of %s, but only %d are available (%d healthy, %d in use)", needed, name, len(available), healthy, healthy-len(available))
	}
	chosen := fromNode
	if chosen == nil {
		var err error
		if chosen, err = m.choose(ctx, ep, devices, available, mustInclude, needed); err != nil {
			return err
		}
	}
	callCtx, cancel := context.WithTimeout(ctx, m.opts.CallTimeout)
	defer cancel()
	start := time.Now()
	resp, err := ep.client.Allocate(callCtx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: chosen}}})
	if m.opts.Observer != nil {
		m.opts.Observer.AllocationDone(name, time.Since(start))
	}
	if err != nil {
		return admissionError("device plugin %s failed to allocate %v: %v", name, chosen, err)
	}
	if len(resp.ContainerResponses) != 1 {
		return admissionError("device plugin %s answered %d container responses for 1 request", name, len(resp.ContainerResponses))
	}
	cr := resp.ContainerResponses[0]
	raw, err := proto.Marshal(cr)
	if err != nil {
		return admissionError("encode allocation of %s: %v", name, err)
	}
	perNUMA := checkpoint.DevicesPerNUMA{}
	for _, id := range chosen {
		node := numaNode(devices[id])
		perNUMA[node] = append(perNUMA[node], id)
	}
	m.mu.Lock()
	if old := m.allocs.get(uid, container, name); old != nil {
		m.markUsedLocked(name, old.ids(), false)
	}
	m.allocs.set(uid, container, name, &allocation{devices: perNUMA, resp: cr, raw: raw})
	m.markUsedLocked(name, chosen, true)
	m.dirtyLocked()
	m.mu.Unlock()
	m.log.Info("devices allocated", "pod", uid, "container", container, "resource", name, "devices", chosen)
	return nil
}

func numaNode(d *pluginapi.Device) int64 {
	if d == nil || d.Topology == nil || len(d.Topology.Nodes) == 0 {
		return -1
	}
	return d.Topology.Nodes[0].ID
}

// choose picks needed devices: the plugin's preference when it offers one
// (kept within the candidates), else devices on one NUMA node if possible.
func (m *Manager) choose(ctx context.Context, ep *endpoint, devices map[string]*pluginapi.Device, available, mustInclude []string, needed int) ([]string, error) {
	candidates := map[string]bool{}
	for _, id := range available {
		candidates[id] = true
	}
	chosen := []string{}
	taken := map[string]bool{}
	take := func(id string) {
		if len(chosen) < needed && candidates[id] && !taken[id] {
			chosen = append(chosen, id)
			taken[id] = true
		}
	}
	if ep.options.GetGetPreferredAllocationAvailable() {
		callCtx, cancel := context.WithTimeout(ctx, m.opts.CallTimeout)
		resp, err := ep.client.GetPreferredAllocation(callCtx, &pluginapi.PreferredAllocationRequest{
			ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
				AvailableDeviceIDs: available, MustIncludeDeviceIDs: mustInclude, AllocationSize: int32(needed),
			}},
		})
		cancel()
		if err != nil {
			return nil, admissionError("device plugin %s failed GetPreferredAllocation: %v", ep.resource, err)
		}
		for _, cr := range resp.ContainerResponses {
			for _, id := range cr.DeviceIDs {
				take(id)
			}
		}
	}
	for _, id := range mustInclude {
		take(id)
	}
	if len(chosen) < needed {
		// Prefer the NUMA node that can satisfy the rest alone, fewest spare devices first.
		byNode := map[int64][]string{}
		for _, id := range available {
			if !taken[id] {
				byNode[numaNode(devices[id])] = append(byNode[numaNode(devices[id])], id)
			}
		}
		nodes := make([]int64, 0, len(byNode))
		for n := range byNode {
			nodes = append(nodes, n)
		}
		rest := needed - len(chosen)
		sort.Slice(nodes, func(i, j int) bool {
			fi, fj := len(byNode[nodes[i]]) >= rest, len(byNode[nodes[j]]) >= rest
			if fi != fj {
				return fi
			}
			if len(byNode[nodes[i]]) != len(byNode[nodes[j]]) {
				return (len(byNode[nodes[i]]) < len(byNode[nodes[j]])) == fi
			}
			return nodes[i] < nodes[j]
		})
		for _, n := range nodes {
			for _, id := range byNode[n] {
				take(id)
			}
		}
	}
	if len(chosen) < needed {
		return nil, admissionError("could not choose %d devices of %s", needed, ep.resource)
	}
	return chosen, nil
}

// Apply merges the plugins' answers for a container into its CRI config:
// envs, mounts, device nodes, annotations and CDI devices. Among resources
// the first (by name) wins; the container's own env wins over a plugin's.
func (m *Manager) Apply(pod *v1.Pod, c *v1.Container, cfg *runtimeapi.ContainerConfig) {
	m.mu.Lock()
	resources := m.allocs[string(pod.UID)][c.Name]
	names := make([]string, 0, len(resources))
	for name := range resources {
		names = append(names, name)
	}
	sort.Strings(names)
	responses := make([]*pluginapi.ContainerAllocateResponse, len(names))
	for i, n := range names {
		responses[i] = resources[n].resp
	}
	m.mu.Unlock()
	envSet := map[string]bool{}
	for _, e := range cfg.Envs {
		envSet[e.Key] = true
	}
	mountSet := map[string]bool{}
	for _, mt := range cfg.Mounts {
		mountSet[mt.ContainerPath] = true
	}
	deviceSet := map[string]bool{}
	cdiSet := map[string]bool{}
	// claim takes key for this resource unless an earlier one has it.
	claim := func(set map[string]bool, kind, key, resource string) bool {
		if set[key] {
			m.log.Warn("device plugin answers conflict; the first wins", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, kind, key, "resource", resource)
			return false
		}
		set[key] = true
		return true
	}
	annotationSet := map[string]bool{}
	for k := range cfg.Annotations {
		annotationSet[k] = true
	}
	var pluginEnvs []*runtimeapi.KeyValue
	for i, resp := range responses {
		res := names[i]
		keys := make([]string, 0, len(resp.Envs))
		for k := range resp.Envs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if claim(envSet, "env", k, res) {
				pluginEnvs = append(pluginEnvs, &runtimeapi.KeyValue{Key: k, Value: []byte(resp.Envs[k])})
			}
		}
		for _, mt := range resp.Mounts {
			if claim(mountSet, "mount", mt.ContainerPath, res) {
				cfg.Mounts = append(cfg.Mounts, &runtimeapi.Mount{ContainerPath: mt.ContainerPath, HostPath: mt.HostPath, Readonly: mt.ReadOnly})
			}
		}
		for _, d := range resp.Devices {
			if claim(deviceSet, "device", d.ContainerPath, res) {
				cfg.Devices = append(cfg.Devices, &runtimeapi.Device{ContainerPath: d.ContainerPath, HostPath: d.HostPath, Permissions: d.Permissions})
			}
		}
		for k, v := range resp.Annotations {
			if claim(annotationSet, "annotation", k, res) {
				if cfg.Annotations == nil {
					cfg.Annotations = map[string]string{}
				}
				cfg.Annotations[k] = v
			}
		}
		for _, d := range resp.CdiDevices {
			if claim(cdiSet, "CDI device", d.Name, res) {
				cfg.CDIDevices = append(cfg.CDIDevices, &runtimeapi.CDIDevice{Name: d.Name})
			}
		}
	}
	// Plugin envs come first, so the container's own value of a key wins at the runtime.
	cfg.Envs = append(pluginEnvs, cfg.Envs...)
}

// PreStart makes sure the container's allocation is on disk (so a crash
// never leaves a running container whose devices are not recorded), then
// calls PreStartContainer for plugins that asked for it, with a 30 s
// deadline; an error fails this start of the container.
func (m *Manager) PreStart(ctx context.Context, pod *v1.Pod, c *v1.Container) error {
	if err := m.flush(ctx); err != nil {
		return err
	}
	type call struct {
		ep  *endpoint
		ids []string
	}
	var calls []call
	m.mu.Lock()
	for name, al := range m.allocs[string(pod.UID)][c.Name] {
		r := m.resources[name]
		if r == nil || r.endpoint == nil || !r.endpoint.options.GetPreStartRequired() {
			continue
		}
		calls = append(calls, call{ep: r.endpoint, ids: al.ids()})
	}
	m.mu.Unlock()
	for _, cl := range calls {
		callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := cl.ep.client.PreStartContainer(callCtx, &pluginapi.PreStartContainerRequest{DevicesIds: cl.ids})
		cancel()
		if err != nil {
			return fmt.Errorf("PreStartContainer of %s for devices %v: %w", cl.ep.resource, cl.ids, err)
		}
	}
	return nil
}

// Release frees a removed pod's devices.
func (m *Manager) Release(uid types.UID) {
	m.mu.Lock()
	released := m.releaseLocked(string(uid))
	m.mu.Unlock()
	if released {
		m.log.Info("devices released", "pod", uid)
	}
}

func (m *Manager) releaseLocked(uid string) bool {
	delete(m.restored, uid)
	if _, ok := m.allocs[uid]; !ok {
		return false
	}
	for _, resources := range m.allocs[uid] {
		for name, al := range resources {
			m.markUsedLocked(name, al.ids(), false)
		}
	}
	delete(m.allocs, uid)
	m.dirtyLocked()
	return true
}

// Retain frees the devices of pods not in keep: pods deleted while knode
// was down. Only pods restored from the checkpoint that have not asked for
// their devices since are candidates, decided and freed under the lock:
// keep is computed before Retain runs, and a pod allocated in between
// would lose a device its containers use to the next pod.
func (m *Manager) Retain(keep map[types.UID]bool) {
	m.mu.Lock()
	var gone []string
	for uid := range m.restored {
		if !keep[types.UID(uid)] && m.releaseLocked(uid) {
			gone = append(gone, uid)
		}
	}
	m.mu.Unlock()
	for _, uid := range gone {
		m.log.Info("devices released", "pod", uid)
	}
}
