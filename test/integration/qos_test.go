package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"knode.io/knode/internal/nodeinfo"
)

// cgroupFile reads a v1 cgroup file (controller, cgroup path, file).
func cgroupFile(t *testing.T, controller, cgroup, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, cgroup, file))
	if err != nil {
		t.Fatalf("read cgroup file: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// The kubelet's cgroup hierarchy under --cgroup-root, read back from
// cgroupfs: kubepods, kubepods/burstable, kubepods/besteffort, each pod's
// cgroup beneath its QoS class's with the kubelet's CPU shares, CFS quota
// and memory limit, and the containers' oom_score_adj by QoS class read
// from inside. A removed pod's cgroup goes.
func TestQoSCgroupsAndOOMScore(t *testing.T) {
	requireCgroupV1(t)
	t.Parallel()
	root := testCgroupRoot(t)
	n := newNode(t)
	n.writeManifest("guaranteed.yaml", oomScorePod("guaranteed", "{limits: {cpu: 200m, memory: 64Mi}}"))
	n.writeManifest("burstable.yaml", oomScorePod("burstable",
		"{requests: {cpu: 100m, memory: 512Mi}, limits: {memory: 1Gi}}",
		"{requests: {cpu: 150m}, limits: {memory: 64Mi}}"))
	n.writeManifest("besteffort.yaml", oomScorePod("besteffort", "{}"))
	n.startKnode("--cgroup-root", root)
	memTotal, err := nodeinfo.MemoryBytes()
	if err != nil {
		t.Fatal(err)
	}
	burstable := func(request int64) string {
		adj := 1000 - 1000*request/memTotal
		return strconv.FormatInt(min(max(adj, 3), 999), 10)
	}
	// The runtime may not lower a score below its own (containerd's
	// restrict_oom_score_adj, or no CAP_SYS_RESOURCE on this host): the
	// kubelet's -997 then reaches the container as the runtime's own score.
	guaranteed := "-997"
	if !canLowerOOMScore() {
		guaranteed = "0"
	}
	for _, tc := range []struct {
		pod, container, oom string
	}{
		{"guaranteed", "main", guaranteed},
		{"burstable", "main", burstable(512 << 20)},
		// No memory request: the limit is the request, as API defaulting makes it.
		{"burstable", "second", burstable(64 << 20)},
		{"besteffort", "main", "1000"},
	} {
		if got := strings.TrimSpace(n.waitReport("default", tc.pod, tc.container)); got != tc.oom {
			t.Errorf("%s/%s: oom_score_adj %s inside, want %s", tc.pod, tc.container, got, tc.oom)
		}
	}
	uid := func(name string) string {
		p := n.apiPod(n.podName(name))
		if p == nil {
			t.Fatalf("pod %s not served", name)
		}
		return string(p.UID)
	}
	g := root + "/kubepods/pod" + uid("guaranteed")
	b := root + "/kubepods/burstable/pod" + uid("burstable")
	be := root + "/kubepods/besteffort/pod" + uid("besteffort")
	for _, c := range []struct{ controller, cgroup, file, want string }{
		{"cpu", g, "cpu.shares", "204"},
		{"cpu", g, "cpu.cfs_quota_us", "20000"},
		{"cpu", g, "cpu.cfs_period_us", "100000"},
		{"memory", g, "memory.limit_in_bytes", strconv.Itoa(64 << 20)},
		{"cpu", b, "cpu.shares", "256"},
		{"cpu", b, "cpu.cfs_quota_us", "-1"},
		{"memory", b, "memory.limit_in_bytes", strconv.Itoa(1<<30 + 64<<20)},
		{"cpu", be, "cpu.shares", "2"},
		{"cpu", root + "/kubepods/besteffort", "cpu.shares", "2"},
		{"cpu", root + "/kubepods/burstable", "cpu.shares", "256"},
		{"cpu", root + "/kubepods", "cpu.shares", strconv.Itoa(1024 * nodeinfo.CPUs())},
	} {
		if got := cgroupFile(t, c.controller, c.cgroup, c.file); got != c.want {
			t.Errorf("%s %s/%s = %s, want %s", c.controller, c.cgroup, c.file, got, c.want)
		}
	}
	// The containers run inside their pod's cgroup.
	id := n.running("default", "guaranteed", "main").Id
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/cpu", g, id)); err != nil {
		t.Errorf("the container's cgroup is not beneath its pod's: %v", err)
	}

	n.removeManifest("burstable.yaml")
	n.eventually(60*time.Second, "the burstable pod's cgroup to be removed", func() bool {
		_, errCPU := os.Stat(filepath.Join("/sys/fs/cgroup/cpu", b))
		_, errMem := os.Stat(filepath.Join("/sys/fs/cgroup/memory", b))
		return os.IsNotExist(errCPU) && os.IsNotExist(errMem)
	})
	if got := cgroupFile(t, "cpu", root+"/kubepods/burstable", "cpu.shares"); got != "2" {
		t.Errorf("burstable shares after its pod went: %s, want 2", got)
	}
}

// oomScorePod is a static pod whose containers (main, second, ...) print
// their oom_score_adj and sleep, each with the given resources (YAML).
func oomScorePod(name string, resources ...string) string {
	const show = `cat /proc/self/oom_score_adj; echo end; exec sleep 3600`
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n", name)
	for i, r := range resources {
		fmt.Fprintf(&b, "  - name: %s\n    image: %s\n    command: [\"sh\", \"-c\", %q]\n    resources: %s\n",
			[]string{"main", "second"}[i], busybox, show, r)
	}
	return b.String()
}

// canLowerOOMScore reports whether a process here may lower its
// oom_score_adj (which the embedded containerd's restrict_oom_score_adj
// and an unprivileged host forbid).
func canLowerOOMScore() bool {
	return exec.Command("sh", "-c", "echo -1 > /proc/self/oom_score_adj").Run() == nil
}
