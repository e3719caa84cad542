package doctor

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"knode.io/knode/internal/eviction"
)

func checkNode(env Env, r *Report) {
	const area = "node"
	if fi, err := os.Stat(env.RootDir); err != nil {
		r.warn(area, "root dir", fmt.Sprintf("%s does not exist yet", env.RootDir), "knode creates it at start")
	} else if fi.Mode().Perm()&0o022 != 0 {
		r.problem(area, "root dir", fmt.Sprintf("%s is mode %v: others can write to knode's state", env.RootDir, fi.Mode().Perm()), "chmod go-w "+env.RootDir)
	} else {
		r.ok(area, "root dir", fmt.Sprintf("%s is mode %v", env.RootDir, fi.Mode().Perm()))
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err == nil {
		if st.Type == 0x63677270 { // CGROUP2_SUPER_MAGIC
			r.ok(area, "cgroups", "cgroup v2 (driver cgroupfs)")
		} else {
			r.ok(area, "cgroups", "cgroup v1 (driver cgroupfs)")
		}
	}
	if data, err := os.ReadFile("/proc/swaps"); err == nil {
		if lines := strings.Count(strings.TrimSpace(string(data)), "\n"); lines > 0 {
			r.warn(area, "swap", fmt.Sprintf("%d swap device(s) active", lines), "the kubelet refuses to start with swap by default; knode runs, but pod memory limits then do not bound memory use")
		} else {
			r.ok(area, "swap", "no swap")
		}
	}
	features := map[string]bool{}
	if f, err := os.Open("/proc/filesystems"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			features[fields[len(fields)-1]] = true
		}
		f.Close()
	}
	if features["overlay"] {
		r.ok(area, "kernel", "overlay filesystem available")
	} else {
		r.problem(area, "kernel", "no overlay filesystem in /proc/filesystems", "load the overlay module: the runtime's default snapshotter needs it")
	}
	for _, ns := range []string{"pid", "net", "ipc", "uts", "mnt"} {
		if _, err := os.Stat("/proc/self/ns/" + ns); err != nil {
			r.problem(area, "kernel", "no "+ns+" namespaces", "use a kernel with namespaces")
		}
	}
	checkPressure(env, r)
	for _, d := range []string{env.RootDir, env.PodLogsDir} {
		var fs syscall.Statfs_t
		path := existingParent(d)
		if err := syscall.Statfs(path, &fs); err == nil {
			free := float64(int64(fs.Bavail)*fs.Bsize) / (1 << 30)
			if free < 1 {
				r.problem(area, "disk", fmt.Sprintf("%.2f GiB free under %s", free, d), "free disk space: pods, logs and checkpoints need it")
			} else {
				r.ok(area, "disk", fmt.Sprintf("%.1f GiB free under %s", free, d))
			}
		}
	}
}

// checkPressure says what the node would report as MemoryPressure and
// DiskPressure, with the kubelet's default thresholds.
func checkPressure(env Env, r *Report) {
	const area = "node"
	thresholds, err := eviction.ParseHard(eviction.DefaultHard)
	if err != nil {
		r.warn(area, "memory pressure", err.Error(), "")
		return
	}
	rootDir := existingParent(env.RootDir)
	p := eviction.New(thresholds, rootDir, slog.New(slog.DiscardHandler))
	switch under, err := p.MemoryPressure(); {
	case err != nil:
		r.warn(area, "memory pressure", "cannot measure: "+err.Error(), "check /proc/meminfo")
	case under:
		r.problem(area, "memory pressure", "less than 100 MiB of memory available: the node reports MemoryPressure", "free memory or move pods away")
	default:
		r.ok(area, "memory pressure", "more than 100 MiB of memory available")
	}
	switch under, err := p.DiskPressure(); {
	case err != nil:
		r.warn(area, "disk pressure", "cannot measure: "+err.Error(), "check the root dir")
	case under:
		r.problem(area, "disk pressure", fmt.Sprintf("the filesystem of %s has under 10%% of its space or 5%% of its inodes free: the node reports DiskPressure", rootDir),
			"free space there (old logs, images, checkpoints)")
	default:
		r.ok(area, "disk pressure", fmt.Sprintf("the filesystem of %s has room (the kubelet's 10%% space and 5%% inodes thresholds)", rootDir))
	}
}

// existingParent is p, or its nearest parent that exists.
func existingParent(p string) string {
	for p != "/" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		p = parent(p)
	}
	return p
}

func parent(p string) string {
	i := strings.LastIndex(strings.TrimSuffix(p, "/"), "/")
	if i <= 0 {
		return "/"
	}
	return p[:i]
}
