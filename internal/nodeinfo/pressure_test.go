package nodeinfo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMemoryPressure(t *testing.T) {
	tests := []struct {
		meminfo string
		want    bool
		err     bool
	}{
		{"MemTotal: 1000000 kB\nMemAvailable:   204800 kB\n", false, false},
		{"MemTotal: 1000000 kB\nMemAvailable:   102399 kB\n", true, false}, // just under 100 MiB
		{"MemTotal: 1000000 kB\n", false, true},
		{"MemAvailable: lots\n", false, true},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "meminfo"), []byte(tt.meminfo), 0o644)
		got, err := Pressure{proc: dir}.MemoryPressure()
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("%q: %v %v, want %v (error %v)", tt.meminfo, got, err, tt.want, tt.err)
		}
	}
}

func TestDiskPressure(t *testing.T) {
	tests := []struct {
		avail, blocks, freeInodes, inodes uint64
		want                              bool
	}{
		{50, 100, 50, 100, false},
		{10, 100, 50, 100, false}, // exactly 10%: not under
		{9, 100, 50, 100, true},
		{50, 100, 4, 100, true},
		{0, 0, 0, 0, false}, // a filesystem that reports nothing
	}
	for _, tt := range tests {
		if got := diskPressure(tt.avail, tt.blocks, tt.freeInodes, tt.inodes); got != tt.want {
			t.Errorf("%+v: %v", tt, got)
		}
	}
	if _, err := (Pressure{RootDir: t.TempDir()}).DiskPressure(); err != nil {
		t.Fatal(err)
	}
}
