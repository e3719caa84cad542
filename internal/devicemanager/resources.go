package devicemanager

import (
	"sort"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Device is one device as its plugin reports it.
type Device struct {
	ID     string  `json:"id"`
	Health string  `json:"health"`
	NUMA   []int64 `json:"numa,omitempty"`
}

// Allocation is the devices one container holds.
type Allocation struct {
	PodUID    string   `json:"podUID"`
	Container string   `json:"container"`
	Devices   []string `json:"devices"`
}

// Resource is what `knode devices` and the node status show per resource.
type Resource struct {
	Name        string       `json:"name"`
	Endpoint    string       `json:"endpoint,omitempty"`
	Connected   bool         `json:"connected"`
	Capacity    int64        `json:"capacity"`
	Allocatable int64        `json:"allocatable"`
	Devices     []Device     `json:"devices"`
	Allocations []Allocation `json:"allocations"`
	// LastError is the last registration failure, if any.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
}

// Resources lists every resource, sorted by name: capacity counts all
// devices (kept through a disconnection until the grace period ends),
// allocatable only healthy devices of a connected plugin.
func (m *Manager) Resources() []Resource {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Resource{}
	for _, r := range m.resources {
		out = append(out, m.describeLocked(r))
	}
	for name, r := range m.failed {
		if _, ok := m.resources[name]; !ok {
			out = append(out, m.describeLocked(r))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (m *Manager) describeLocked(r *resource) Resource {
	res := Resource{Name: r.name, Connected: r.endpoint != nil && r.disconnectedAt.IsZero(),
		LastError: r.lastError, LastErrorAt: r.lastErrorAt, Devices: []Device{}, Allocations: []Allocation{}}
	if r.endpoint != nil {
		res.Endpoint = r.endpoint.socket
	}
	for _, d := range r.devices {
		dev := Device{ID: d.ID, Health: d.Health}
		if d.Topology != nil {
			for _, n := range d.Topology.Nodes {
				dev.NUMA = append(dev.NUMA, n.ID)
			}
		}
		res.Devices = append(res.Devices, dev)
		res.Capacity++
		if res.Connected && d.Health == pluginapi.Healthy {
			res.Allocatable++
		}
	}
	sort.Slice(res.Devices, func(i, j int) bool { return res.Devices[i].ID < res.Devices[j].ID })
	for uid, containers := range m.allocs {
		for container, resources := range containers {
			if al := resources[r.name]; al != nil {
				res.Allocations = append(res.Allocations, Allocation{PodUID: uid, Container: container, Devices: al.ids()})
			}
		}
	}
	sort.Slice(res.Allocations, func(i, j int) bool {
		return res.Allocations[i].PodUID+res.Allocations[i].Container < res.Allocations[j].PodUID+res.Allocations[j].Container
	})
	return res
}

// ContainerDevices is what PodResources reports for a container.
type ContainerDevices struct {
	Resource string
	Devices  []string
	NUMA     []int64
}

// PodDevices returns a pod's devices per container.
func (m *Manager) PodDevices(uid string) map[string][]ContainerDevices {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]ContainerDevices{}
	for container, resources := range m.allocs[uid] {
		for name, al := range resources {
			for node, ids := range al.devices {
				cd := ContainerDevices{Resource: name, Devices: append([]string(nil), ids...)}
				if node >= 0 {
					cd.NUMA = []int64{node}
				}
				out[container] = append(out[container], cd)
			}
		}
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return list[i].Resource < list[j].Resource })
	}
	return out
}

// AllocatableDevices returns every healthy device of connected plugins.
func (m *Manager) AllocatableDevices() []ContainerDevices {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ContainerDevices
	for _, r := range m.resources {
		if r.endpoint == nil || !r.disconnectedAt.IsZero() {
			continue
		}
		for _, d := range r.devices {
			if d.Health != pluginapi.Healthy {
				continue
			}
			cd := ContainerDevices{Resource: r.name, Devices: []string{d.ID}}
			if n := numaNode(d); n >= 0 {
				cd.NUMA = []int64{n}
			}
			out = append(out, cd)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource+out[i].Devices[0] < out[j].Resource+out[j].Devices[0] })
	return out
}
