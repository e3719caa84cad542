// Package nodeinfo reads facts about this machine that pods and the node
// status report: its IP address, CPU count, memory and kernel release.
package nodeinfo

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// HostIP picks the node's address as the kubelet does without --node-ip:
// the first global unicast IPv4 address of an interface that is up, else IPv6.
func HostIP() (string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("list interfaces: %w", err)
	}
	var v6 string
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipnet, ok := a.(*net.IPNet)
			if !ok || !ipnet.IP.IsGlobalUnicast() {
				continue
			}
			if ipnet.IP.To4() != nil {
				return ipnet.IP.String(), nil
			}
			if v6 == "" {
				v6 = ipnet.IP.String()
			}
		}
	}
	if v6 != "" {
		return v6, nil
	}
	return "127.0.0.1", nil
}

// CPUs is the number of CPUs this process may use.
func CPUs() int { return runtime.NumCPU() }

// MemoryBytes reads MemTotal from /proc/meminfo.
func MemoryBytes() (int64, error) {
	mem, err := Meminfo("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	total, ok := mem["MemTotal"]
	if !ok {
		return 0, fmt.Errorf("MemTotal not found in /proc/meminfo")
	}
	return int64(total), nil
}

// Meminfo reads a /proc/meminfo file: each field, in bytes.
func Meminfo(path string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read meminfo: %w", err)
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		n, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) >= 3 && fields[2] == "kB" {
			n *= 1024
		}
		out[strings.TrimSuffix(fields[0], ":")] = n
	}
	return out, sc.Err()
}

// OSImage is PRETTY_NAME from /etc/os-release, as the kubelet reports it.
func OSImage() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "unknown"
}

// KernelRelease is uname -r ("" when it cannot be read).
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Labels are the well-known labels the kubelet puts on its Node
// (hostname, os, arch and their beta twins), with extra (--node-labels)
// on top. Admission matches nodeSelectors against them in standalone mode
// too.
func Labels(nodeName string, extra map[string]string) map[string]string {
	l := map[string]string{
		"kubernetes.io/hostname":  nodeName,
		"kubernetes.io/os":        runtime.GOOS,
		"kubernetes.io/arch":      runtime.GOARCH,
		"beta.kubernetes.io/os":   runtime.GOOS,
		"beta.kubernetes.io/arch": runtime.GOARCH,
	}
	for k, v := range extra {
		l[k] = v
	}
	return l
}
