package nodeinfo

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The kubelet's default hard eviction thresholds (Linux).
const (
	memoryAvailableMin = 100 << 20 // memory.available < 100Mi
	nodefsAvailablePct = 10        // nodefs.available < 10%
	nodefsInodesPct    = 5         // nodefs.inodesFree < 5%
)

// Pressure measures what the kubelet's eviction manager watches, against
// its default hard thresholds, for the node's MemoryPressure and
// DiskPressure conditions. knode reports pressure; it evicts nothing.
type Pressure struct {
	// RootDir is the node's root dir; its filesystem is the nodefs.
	RootDir string
	// proc is where /proc is (a test's directory when set).
	proc string
}

// MemoryPressure is true when less than 100 MiB is available.
func (p Pressure) MemoryPressure() (bool, error) {
	proc := p.proc
	if proc == "" {
		proc = "/proc"
	}
	f, err := os.Open(filepath.Join(proc, "meminfo"))
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kib, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return false, fmt.Errorf("MemAvailable %q: %w", rest, err)
			}
			return kib*1024 < memoryAvailableMin, nil
		}
	}
	return false, fmt.Errorf("no MemAvailable in %s/meminfo", proc)
}

// DiskPressure is true when the root dir's filesystem has less than 10% of
// its space or 5% of its inodes free.
func (p Pressure) DiskPressure() (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(p.RootDir, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", p.RootDir, err)
	}
	return diskPressure(st.Bavail, st.Blocks, st.Ffree, st.Files), nil
}

func diskPressure(availBlocks, blocks, freeInodes, inodes uint64) bool {
	if blocks > 0 && availBlocks*100 < blocks*nodefsAvailablePct {
		return true
	}
	return inodes > 0 && freeInodes*100 < inodes*nodefsInodesPct
}
