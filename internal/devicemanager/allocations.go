package devicemanager

import (
	"sort"

	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"knode.io/knode/internal/devicemanager/checkpoint"
)

// allocation is one container's devices of one resource and the plugin's answer.
type allocation struct {
	devices checkpoint.DevicesPerNUMA
	resp    *pluginapi.ContainerAllocateResponse
	raw     []byte
}

func (a *allocation) ids() []string {
	var out []string
	for _, ids := range a.devices {
		out = append(out, ids...)
	}
	sort.Strings(out)
	return out
}

// allocations: pod UID → container → resource.
type allocations map[string]map[string]map[string]*allocation

func (a allocations) get(uid, container, resource string) *allocation {
	return a[uid][container][resource]
}

func (a allocations) set(uid, container, resource string, al *allocation) {
	if a[uid] == nil {
		a[uid] = map[string]map[string]*allocation{}
	}
	if a[uid][container] == nil {
		a[uid][container] = map[string]*allocation{}
	}
	a[uid][container][resource] = al
}

func (a allocations) load(entries []checkpoint.PodDevicesEntry) {
	for _, e := range entries {
		resp := &pluginapi.ContainerAllocateResponse{}
		if err := proto.Unmarshal(e.AllocResp, resp); err != nil {
			resp = &pluginapi.ContainerAllocateResponse{}
		}
		a.set(e.PodUID, e.ContainerName, e.ResourceName, &allocation{devices: e.DeviceIDs, resp: resp, raw: e.AllocResp})
	}
}

// entries lists the allocations for the checkpoint, unordered (sortEntries orders them).
func (a allocations) entries() []checkpoint.PodDevicesEntry {
	var out []checkpoint.PodDevicesEntry
	for uid, containers := range a {
		for container, resources := range containers {
			for resource, al := range resources {
				out = append(out, checkpoint.PodDevicesEntry{PodUID: uid, ContainerName: container, ResourceName: resource,
					DeviceIDs: al.devices, AllocResp: al.raw})
			}
		}
	}
	return out
}

// sortEntries orders entries as the checkpoint lists them (outside the
// manager's lock: it is the costly part).
func sortEntries(out []checkpoint.PodDevicesEntry) {
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.PodUID != b.PodUID {
			return a.PodUID < b.PodUID
		}
		if a.ContainerName != b.ContainerName {
			return a.ContainerName < b.ContainerName
		}
		return a.ResourceName < b.ResourceName
	})
}
