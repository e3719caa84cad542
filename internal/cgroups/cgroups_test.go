package cgroups

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSetV1(t *testing.T) {
	dir := t.TempDir()
	mounts := map[string]string{"cpu": filepath.Join(dir, "cpu"), "memory": filepath.Join(dir, "memory"), "hugetlb": filepath.Join(dir, "hugetlb")}
	m := NewV1(mounts, []string{"1GB", "2MB"})
	shares, quota, period, mem := uint64(512), int64(50000), uint64(100000), int64(1<<30)
	err := m.Set("/kubepods/podu1", Resources{CPUShares: &shares, CPUQuota: &quota, CPUPeriod: &period, Memory: &mem,
		HugePages: map[int64]int64{2 << 20: 4 << 20}, HugePagesExclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"cpu/kubepods/podu1/cpu.shares":                     "512",
		"cpu/kubepods/podu1/cpu.cfs_quota_us":               "50000",
		"cpu/kubepods/podu1/cpu.cfs_period_us":              "100000",
		"memory/kubepods/podu1/memory.limit_in_bytes":       "1073741824",
		"hugetlb/kubepods/podu1/hugetlb.2MB.limit_in_bytes": "4194304",
		"hugetlb/kubepods/podu1/hugetlb.1GB.limit_in_bytes": "0",
	} {
		if got := read(t, filepath.Join(dir, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	// Not exclusive: sizes left out are not written.
	if err := m.Set("/kubepods/besteffort", Resources{HugePages: map[int64]int64{2 << 20: 8 << 20}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "hugetlb/kubepods/besteffort/hugetlb.1GB.limit_in_bytes")); !os.IsNotExist(err) {
		t.Errorf("an unasked size was written: %v", err)
	}
}

func TestSetV2(t *testing.T) {
	dir := t.TempDir()
	m := NewV2(dir, nil)
	shares, quota, period := uint64(1024), int64(-1), uint64(100000)
	if err := m.Set("/kubepods/burstable/podu2", Resources{CPUShares: &shares, CPUQuota: &quota, CPUPeriod: &period}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "kubepods/burstable/podu2/cpu.weight")); got != "39" {
		t.Errorf("cpu.weight = %s, want 39", got)
	}
	if got := read(t, filepath.Join(dir, "kubepods/burstable/podu2/cpu.max")); got != "max 100000" {
		t.Errorf("cpu.max = %s", got)
	}
	if got := read(t, filepath.Join(dir, "kubepods/cgroup.subtree_control")); !strings.HasPrefix(got, "+") {
		t.Errorf("controllers not enabled for the children: %q", got)
	}
}

func TestNamesAndRemove(t *testing.T) {
	dir := t.TempDir()
	m := NewV1(map[string]string{"cpu": filepath.Join(dir, "cpu"), "pids": filepath.Join(dir, "pids")}, nil)
	for _, bad := range []string{"kubepods", "/kubepods/../etc", "/", "/a//b"} {
		if err := m.Set(bad, Resources{}); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
		if err := m.Remove(bad); err == nil {
			t.Errorf("Remove(%q) accepted", bad)
		}
	}
	// A pod cgroup with a leftover child (runc's container cgroup) in two hierarchies.
	for _, h := range []string{"cpu", "pids"} {
		if err := os.MkdirAll(filepath.Join(dir, h, "kubepods/podu3/ctr"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if !m.Exists("/kubepods/podu3") {
		t.Fatal("Exists: false")
	}
	if err := m.Remove("/kubepods/podu3"); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"cpu", "pids"} {
		if _, err := os.Stat(filepath.Join(dir, h, "kubepods/podu3")); !os.IsNotExist(err) {
			t.Errorf("%s: pod cgroup still there: %v", h, err)
		}
		if _, err := os.Stat(filepath.Join(dir, h, "kubepods")); err != nil {
			t.Errorf("%s: the parent went too: %v", h, err)
		}
	}
	if err := m.Remove("/kubepods/podu3"); err != nil {
		t.Errorf("removing a removed cgroup: %v", err)
	}
}

func TestPageSizeName(t *testing.T) {
	for size, want := range map[int64]string{64 << 10: "64KB", 2 << 20: "2MB", 1 << 30: "1GB", 512: "512B"} {
		if got := PageSizeName(size); got != want {
			t.Errorf("%d: %s, want %s", size, got, want)
		}
	}
}
