package nodeinfo

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// ThermalThrottlePaths are the thermal_throttle directories of the
// possible CPUs (/sys/devices/system/cpu/possible) that exist here: the
// kubelet masks them in every container besides its fixed list.
func ThermalThrottlePaths() []string {
	var paths []string
	for _, cpu := range possibleCPUs() {
		p := fmt.Sprintf("/sys/devices/system/cpu/cpu%d/thermal_throttle", cpu)
		if _, err := os.Stat(p); err == nil {
			paths = append(paths, p)
		}
	}
	return paths
}

// possibleCPUs reads the CPU list from sysfs ("0-3,5"); without it, the
// CPUs Go sees.
func possibleCPUs() []int {
	if data, err := os.ReadFile("/sys/devices/system/cpu/possible"); err == nil {
		if cpus, ok := ParseCPUList(strings.TrimSpace(string(data))); ok {
			return cpus
		}
	}
	cpus := make([]int, runtime.NumCPU())
	for i := range cpus {
		cpus[i] = i
	}
	return cpus
}

// ParseCPUList parses a kernel CPU list such as "0-3,5".
func ParseCPUList(s string) ([]int, bool) {
	var cpus []int
	for _, r := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		start, err := strconv.Atoi(lo)
		if err != nil {
			return nil, false
		}
		end := start
		if isRange {
			if end, err = strconv.Atoi(hi); err != nil || end < start || end-start > 1<<16 {
				return nil, false
			}
		}
		for i := start; i <= end; i++ {
			cpus = append(cpus, i)
		}
	}
	return cpus, true
}

// AppArmorEnabled tells whether the kernel enforces AppArmor, as the
// kubelet checks it: securityfs has apparmor and the module is enabled.
func AppArmorEnabled() bool {
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err != nil {
		return false
	}
	buf, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && len(buf) > 1 && buf[0] == 'Y'
}
