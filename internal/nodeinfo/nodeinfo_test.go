package nodeinfo

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestMeminfo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meminfo")
	os.WriteFile(path, []byte("MemTotal:       1000 kB\nMemAvailable:    250 kB\nHugePages_Total:       4\nbroken line\nBad: x kB\n"), 0o644)
	got, err := Meminfo(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"MemTotal": 1000 * 1024, "MemAvailable": 250 * 1024, "HugePages_Total": 4}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
	if _, err := Meminfo(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file is not an error")
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{"0": {0}, "0-3": {0, 1, 2, 3}, "0-1,4": {0, 1, 4}} {
		got, ok := ParseCPUList(in)
		if !ok || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q: %v %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "a", "3-1", "0-"} {
		if _, ok := ParseCPUList(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
