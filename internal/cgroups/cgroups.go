// Package cgroups makes, limits and removes the cgroups knode manages
// itself (the kubelet's kubepods hierarchy and pod cgroups) directly in
// cgroupfs, as the kubelet's cgroupfs driver does: v1 (one hierarchy per
// controller) and v2 (unified). Containers' own cgroups are the runtime's.
//
// Names are absolute cgroup paths such as /kubepods/burstable/pod<uid>;
// knode builds them from validated pod UIDs, and a name with a ".."
// element is refused. cgroupfs holds no symbolic links, and removal only
// ever rmdirs (which the kernel refuses for a cgroup with processes or
// children), so nothing outside a cgroup can be touched.
package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Resources are the limits written on a cgroup; nil fields are left as the
// kernel has them.
type Resources struct {
	CPUShares *uint64
	CPUQuota  *int64 // -1: unlimited
	CPUPeriod *uint64
	Memory    *int64 // bytes
	// HugePages maps page size (bytes) to a limit (bytes). Sizes the machine
	// has and the map leaves out are limited to 0 when Set is asked to
	// (HugePagesExclusive), as the kubelet does for pod cgroups.
	HugePages          map[int64]int64
	HugePagesExclusive bool
}

// Manager writes cgroups beneath cgroupfs mounts.
type Manager struct {
	// v2 is the unified hierarchy's mount point, "" on v1.
	v2 string
	// v1 maps each v1 controller to its hierarchy's mount point.
	v1 map[string]string
	// hugeSizes are the machine's huge page sizes as cgroupfs names them (2MB, 1GB).
	hugeSizes []string
}

// New finds the cgroup mounts in /proc/self/mountinfo.
func New() (*Manager, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	m := &Manager{v1: map[string]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, opts := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(opts) < 3 {
			continue
		}
		mountPoint := unescape(fields[4])
		switch opts[0] {
		case "cgroup2":
			if mountPoint == "/sys/fs/cgroup" {
				m.v2 = mountPoint
			}
		case "cgroup":
			for _, o := range strings.Split(opts[2], ",") {
				if o != "rw" && o != "ro" && !strings.HasPrefix(o, "name=") && m.v1[o] == "" {
					m.v1[o] = mountPoint
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if m.v2 == "" && len(m.v1) == 0 {
		return nil, errors.New("no cgroup filesystem is mounted")
	}
	m.hugeSizes = machineHugePageSizes("/sys/kernel/mm/hugepages")
	return m, nil
}

// NewV1 and NewV2 make a manager over given mounts, for tests.
func NewV1(mounts map[string]string, hugeSizes []string) *Manager {
	return &Manager{v1: mounts, hugeSizes: hugeSizes}
}

// NewV2 makes a manager over a unified hierarchy mounted at root.
func NewV2(root string, hugeSizes []string) *Manager {
	return &Manager{v2: root, hugeSizes: hugeSizes}
}

func unescape(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// machineHugePageSizes lists hugepages-<N>kB under dir as 2MB, 1GB, ...
func machineHugePageSizes(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		kb, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(kb, "kB"), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, PageSizeName(n*1024))
	}
	sort.Strings(out)
	return out
}

// PageSizeName names a page size as cgroupfs does: 64KB, 2MB, 1GB.
func PageSizeName(bytes int64) string {
	units := []string{"B", "KB", "MB", "GB", "TB", "PB"}
	i := 0
	for bytes >= 1024 && bytes%1024 == 0 && i < len(units)-1 {
		bytes /= 1024
		i++
	}
	return strconv.FormatInt(bytes, 10) + units[i]
}

// V2 reports whether the unified hierarchy is in use.
func (m *Manager) V2() bool { return m.v2 != "" }

// HugeTLB reports whether huge page limits can be set.
func (m *Manager) HugeTLB() bool {
	if m.v2 != "" {
		b, err := os.ReadFile(filepath.Join(m.v2, "cgroup.controllers"))
		return err == nil && strings.Contains(" "+string(b)+" ", " hugetlb ")
	}
	return m.v1["hugetlb"] != ""
}

func checkName(name string) error {
	if !path.IsAbs(name) || path.Clean(name) != name || name == "/" {
		return fmt.Errorf("cgroup name %q: want a clean absolute path below the root", name)
	}
	return nil
}

// Set makes the cgroup (and its parents) and writes r's limits.
func (m *Manager) Set(name string, r Resources) error {
	if err := checkName(name); err != nil {
		return err
	}
	if m.v2 != "" {
		return m.setV2(name, r)
	}
	return m.setV1(name, r)
}

func write(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("cgroup %s: write %s=%s: %w", dir, file, value, err)
	}
	return nil
}

func (m *Manager) setV1(name string, r Resources) error {
	for _, ctrl := range []string{"cpu", "memory", "hugetlb"} {
		mount := m.v1[ctrl]
		if mount == "" {
			continue
		}
		dir := filepath.Join(mount, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("make cgroup: %w", err)
		}
		switch ctrl {
		case "cpu":
			if r.CPUShares != nil {
				if err := write(dir, "cpu.shares", strconv.FormatUint(*r.CPUShares, 10)); err != nil {
					return err
				}
			}
			if r.CPUPeriod != nil {
				if err := write(dir, "cpu.cfs_period_us", strconv.FormatUint(*r.CPUPeriod, 10)); err != nil {
					return err
				}
			}
			if r.CPUQuota != nil {
				if err := write(dir, "cpu.cfs_quota_us", strconv.FormatInt(*r.CPUQuota, 10)); err != nil {
					return err
				}
			}
		case "memory":
			if r.Memory != nil {
				if err := write(dir, "memory.limit_in_bytes", strconv.FormatInt(*r.Memory, 10)); err != nil {
					return err
				}
			}
		case "hugetlb":
			if err := m.hugePages(dir, r, "hugetlb.%s.limit_in_bytes"); err != nil {
				return err
			}
		}
	}
	return nil
}

// hugePages writes each page size's limit: the one asked for, else 0 when
// the sizes asked for are exclusive.
func (m *Manager) hugePages(dir string, r Resources, file string) error {
	asked := map[string]int64{}
	for size, limit := range r.HugePages {
		asked[PageSizeName(size)] = limit
	}
	for _, size := range m.hugeSizes {
		limit, ok := asked[size]
		if !ok && !r.HugePagesExclusive {
			continue
		}
		if err := write(dir, fmt.Sprintf(file, size), strconv.FormatInt(limit, 10)); err != nil {
			return err
		}
	}
	return nil
}

// setV2 makes each level, enabling the controllers for its children in
// the parent's cgroup.subtree_control, then writes the v2 equivalents.
func (m *Manager) setV2(name string, r Resources) error {
	dir := m.v2
	for _, part := range strings.Split(strings.TrimPrefix(name, "/"), "/") {
		for _, ctrl := range []string{"cpu", "memory", "hugetlb", "pids"} {
			// A controller the kernel lacks is refused; the rest still apply.
			_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+ctrl), 0o644)
		}
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("make cgroup: %w", err)
		}
	}
	if r.CPUShares != nil {
		// runc's conversion of shares [2, 262144] to weight [1, 10000].
		weight := 1 + ((*r.CPUShares-2)*9999)/262142
		if err := write(dir, "cpu.weight", strconv.FormatUint(weight, 10)); err != nil {
			return err
		}
	}
	if r.CPUQuota != nil || r.CPUPeriod != nil {
		quota, period := "max", uint64(100000)
		if r.CPUQuota != nil && *r.CPUQuota > 0 {
			quota = strconv.FormatInt(*r.CPUQuota, 10)
		}
		if r.CPUPeriod != nil {
			period = *r.CPUPeriod
		}
		if err := write(dir, "cpu.max", quota+" "+strconv.FormatUint(period, 10)); err != nil {
			return err
		}
	}
	if r.Memory != nil {
		if err := write(dir, "memory.max", strconv.FormatInt(*r.Memory, 10)); err != nil {
			return err
		}
	}
	if m.HugeTLB() {
		return m.hugePages(dir, r, "hugetlb.%s.max")
	}
	return nil
}

// Remove removes the cgroup from every hierarchy, its leftover children
// first. A cgroup that still has processes is left (EBUSY) and reported.
func (m *Manager) Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	var errs []error
	for _, root := range m.hierarchies() {
		if err := rmdirTree(filepath.Join(root, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rmdirTree rmdirs dir's sub-cgroups, then dir. cgroupfs directories
// cannot be removed with unlink and hold no links to follow.
func rmdirTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := rmdirTree(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	if err := unix.Rmdir(dir); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	return nil
}

// Exists reports whether the cgroup exists (in the cpu hierarchy on v1).
func (m *Manager) Exists(name string) bool {
	root := m.v2
	if root == "" {
		root = m.v1["cpu"]
	}
	if root == "" || checkName(name) != nil {
		return false
	}
	st, err := os.Stat(filepath.Join(root, name))
	return err == nil && st.IsDir()
}

// hierarchies are the mount points of every hierarchy, each once, sorted.
func (m *Manager) hierarchies() []string {
	var roots []string
	if m.v2 != "" {
		roots = []string{m.v2}
	}
	seen := map[string]bool{}
	for _, mount := range m.v1 {
		if !seen[mount] {
			seen[mount] = true
			roots = append(roots, mount)
		}
	}
	sort.Strings(roots)
	return roots
}

// Children lists the cgroups directly beneath name that exist in any
// hierarchy (a pod cgroup left in one hierarchy alone is found too, as
// the kubelet scans every subsystem's mount).
func (m *Manager) Children(name string) ([]string, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, root := range m.hierarchies() {
		entries, err := os.ReadDir(filepath.Join(root, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read cgroup %s: %w", name, err)
		}
		for _, e := range entries {
			if e.IsDir() && !seen[e.Name()] {
				seen[e.Name()] = true
				out = append(out, e.Name())
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// procs lists the processes in the cgroup and in every cgroup beneath it,
// in every hierarchy.
func (m *Manager) procs(name string) []int {
	seen := map[int]bool{}
	var pids []int
	for _, root := range m.hierarchies() {
		_ = filepath.WalkDir(filepath.Join(root, name), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 && !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// Destroy kills every process left in the cgroup (and its children) with
// SIGKILL, then removes it, as the kubelet's pod container manager
// destroys a pod cgroup: each process is tried up to five times, one gone
// meanwhile counts as killed, and a cgroup whose processes could not all
// be killed is not removed.
func (m *Manager) Destroy(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if pids := m.procs(name); len(pids) > 0 {
		killed := map[int]bool{}
		var errs []error
		for range 5 {
			errs = nil
			for _, pid := range pids {
				if killed[pid] {
					continue
				}
				if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
					errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
					continue
				}
				killed[pid] = true
			}
			if len(errs) == 0 {
				break
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("failed to kill all the processes attached to the %s cgroups : %w", name, errors.Join(errs...))
		}
	}
	return m.removeAfterKill(name)
}

// removeAfterKill removes the cgroup once the killed processes have left
// it: the kernel takes a killed process out of its cgroup as it exits,
// which it does at its own pace (a process in uninterruptible sleep
// exits when the sleep ends), so EBUSY is retried for a while.
func (m *Manager) removeAfterKill(name string) error {
	var err error
	for wait := time.Millisecond; ; wait *= 2 {
		if err = m.Remove(name); err == nil || !errors.Is(err, unix.EBUSY) || wait > 500*time.Millisecond {
			return err
		}
		time.Sleep(wait)
	}
}
