// Package criu diagnoses checkpoint failures for an operator: which CRIU
// the runtime would use, whether it can dump on this kernel, and what a
// runtime's error means. It only reads; knode never runs CRIU itself.
package criu

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Info is what knode can learn about the CRIU a runtime would use: the
// one first on PATH (the embedded containerd, its shim and runc inherit
// knode's PATH).
type Info struct {
	Path    string
	Version string // e.g. "4.1.1"
	Err     error
}

// Find looks up `criu` on PATH and asks its version.
func Find() Info {
	path, err := exec.LookPath("criu")
	if err != nil {
		return Info{Err: fmt.Errorf("criu is not on PATH: %w", err)}
	}
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		return Info{Path: path, Err: fmt.Errorf("criu --version: %w: %s", err, strings.TrimSpace(string(out)))}
	}
	m := regexp.MustCompile(`Version:\s*([0-9][0-9.]*)`).FindSubmatch(out)
	if m == nil {
		return Info{Path: path, Err: fmt.Errorf("criu --version printed no version: %q", out)}
	}
	return Info{Path: path, Version: string(m[1])}
}

// VersionAtLeast compares dotted versions numerically ("6.18.44-fc" >= "6.13").
func VersionAtLeast(version, min string) bool {
	parse := func(s string) []int {
		var out []int
		for _, part := range strings.Split(s, ".") {
			n := 0
			for _, r := range part {
				if r < '0' || r > '9' {
					break
				}
				n = n*10 + int(r-'0')
			}
			out = append(out, n)
		}
		return out
	}
	v, m := parse(version), parse(min)
	for i := range m {
		var x int
		if i < len(v) {
			x = v[i]
		}
		if x != m[i] {
			return x > m[i]
		}
	}
	return true
}

// VDSOProblem reports the known incompatibility: CRIU before 4.1 cannot
// dump on kernels from 6.13, whose vvar mapping is split (vvar_vclock).
func VDSOProblem(criuVersion, kernel string) bool {
	return criuVersion != "" && kernel != "" && !VersionAtLeast(criuVersion, "4.1") && VersionAtLeast(kernel, "6.13")
}

var criuLogRE = regexp.MustCompile(`path= ?(/\S+/criu-dump\.log)`)

// criuLogMentions reports whether the criu-dump.log an error names (runc
// puts its path in the message) contains needle. Only files of that exact
// name are read, and only their last 256 KiB.
func criuLogMentions(msg, needle string) bool {
	m := criuLogRE.FindStringSubmatch(msg)
	if m == nil {
		return false
	}
	f, err := os.Open(m[1])
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 256<<10 {
		_, _ = f.Seek(-256<<10, io.SeekEnd)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), needle) {
			return true
		}
	}
	return false
}

func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	if _, err := strconv.Atoi(parts[1]); err != nil {
		return parts[0]
	}
	return parts[0] + "." + parts[1]
}
