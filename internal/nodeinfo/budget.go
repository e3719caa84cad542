package nodeinfo

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// HugePages is the node's huge page capacity as the kubelet reports it:
// hugepages-<size> → nr_hugepages × size, for every size the kernel has
// (dir is /sys/kernel/mm/hugepages).
func HugePages(dir string) v1.ResourceList {
	out := v1.ResourceList{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range entries {
		kb, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		size, err := strconv.ParseInt(strings.TrimSuffix(kb, "kB"), 10, 64)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "nr_hugepages"))
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			continue
		}
		name := v1.ResourceName(v1.ResourceHugePagesPrefix + resource.NewQuantity(size*1024, resource.BinarySI).String())
		out[name] = *resource.NewQuantity(n*size*1024, resource.BinarySI)
	}
	return out
}

// FilesystemBytes is the size of the filesystem holding path (the
// kubelet's ephemeral-storage capacity is its root dir's filesystem).
func FilesystemBytes(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Blocks) * int64(st.Bsize), nil
}

// Allocatable is what pods may have of capacity, as the kubelet's node
// status reports it: each resource less what the reservations hold back
// (kube-reserved, system-reserved, hard eviction thresholds), never below
// zero, and memory also less the huge pages, which regular memory cannot use.
func Allocatable(capacity v1.ResourceList, reserved ...v1.ResourceList) v1.ResourceList {
	out := v1.ResourceList{}
	for name, q := range capacity {
		v := q.DeepCopy()
		for _, r := range reserved {
			if rq, ok := r[name]; ok {
				v.Sub(rq)
			}
		}
		if v.Sign() < 0 {
			v.Set(0)
		}
		out[name] = v
	}
	if mem, ok := out[v1.ResourceMemory]; ok {
		for name, q := range capacity {
			if strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix) {
				mem.Sub(q)
			}
		}
		if mem.Sign() < 0 {
			mem.Set(0)
		}
		out[v1.ResourceMemory] = mem
	}
	return out
}

// ParseReserved reads a reservation (kubeReserved, systemReserved) as a
// resource list; pid is the kubelet's name for the process-ID reservation.
func ParseReserved(m map[string]string) (v1.ResourceList, error) {
	out := v1.ResourceList{}
	for name, value := range m {
		q, err := resource.ParseQuantity(value)
		if err != nil {
			return nil, err
		}
		out[v1.ResourceName(name)] = q
	}
	return out, nil
}
