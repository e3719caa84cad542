package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// containerd237 is the containerd build that restores through CRI
// (hack/setup-node.sh builds it next to 2.4.2).
func containerd237(t *testing.T) string {
	return filepath.Dir(tool(t, "hack/setup-node.sh", "containerd-v2.3.7", "bin", "containerd"))
}

var tickRE = regexp.MustCompile(`tick (\d+) holding 16 MiB sha256 ([0-9a-f]+)`)

// ticks parses memhog's lines from a CRI log.
func ticks(log string) (counts []int, sums []string) {
	for _, m := range tickRE.FindAllStringSubmatch(log, -1) {
		n, _ := strconv.Atoi(m[1])
		counts = append(counts, n)
		sums = append(sums, m[2])
	}
	return counts, sums
}

func TestMigrateBetweenNodes(t *testing.T) {
	t.Parallel()
	ctrd := containerd237(t)
	a := newNodeWithRuntime(t, criu41(t), ctrd)
	b := newNodeWithRuntime(t, criu41(t), ctrd)
	a.writeManifest("hog.yaml", `apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  containers:
  - name: hog
    image: `+busybox+`
    command: ["memhog", "16"]
`)
	a.startKnode()
	b.startKnode()
	a.waitRunning("default", "hog", "hog")
	a.eventually(30*time.Second, "a few ticks", func() bool {
		c, _ := ticks(a.logFile("default", "hog", "hog"))
		return len(c) >= 3
	})
	a.waitKnodeRunning("default", "hog", "hog")
	code, _, body := a.raw("POST", a.checkpointPath("default", "hog", "hog", ""))
	if code != 200 {
		t.Fatalf("checkpoint on A: %d %s", code, body)
	}
	var answer struct{ Items []string }
	json.Unmarshal([]byte(body), &answer)
	name := filepath.Base(answer.Items[0])
	before, sumsBefore := ticks(a.logFile("default", "hog", "hog"))
	lastBefore := before[len(before)-1]

	// B fetches the archive over A's API and writes the resuming pod.
	apki := filepath.Join(a.rootDir(), "pki")
	out, err := exec.Command(knodeBinary, "restore", "--from", a.url()+"/checkpoints/"+name,
		"--client-certificate", filepath.Join(apki, "admin.crt"), "--client-key", filepath.Join(apki, "admin.key"),
		"--certificate-authority", filepath.Join(apki, "kubelet.crt"),
		"--root-dir", b.rootDir(), "--to", b.manifests, "--name", "hog-moved").CombinedOutput()
	if err != nil {
		t.Fatalf("knode restore: %v: %s", err, out)
	}
	fi, err := os.Stat(filepath.Join(b.rootDir(), "restore", name))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("fetched archive: %v %v", fi, err)
	}
	b.waitRunning("default", "hog-moved", "hog")
	b.eventually(30*time.Second, "the restored container to tick", func() bool {
		c, _ := ticks(b.logFile("default", "hog-moved", "hog"))
		return len(c) >= 2
	})
	after, sumsAfter := ticks(b.logFile("default", "hog-moved", "hog"))
	// It continues the count (one line may repeat: the log can hold a line
	// printed just after the freeze), with the same memory.
	if after[0] < lastBefore-1 || after[0] == 0 {
		t.Fatalf("restored count starts at %d; the checkpoint was taken after %d", after[0], lastBefore)
	}
	if sumsAfter[0] != sumsBefore[0] {
		t.Fatalf("memory checksum changed: %s before, %s after", sumsBefore[0], sumsAfter[0])
	}
	// knode doctor checkpoint says this runtime can restore.
	out, err = exec.Command(knodeBinary, "doctor", "checkpoint", "-o", "json", "--root-dir", b.rootDir(),
		"--container-runtime-endpoint", b.endpoint(), "--hostname-override", b.name).Output()
	if !strings.Contains(string(out), "restores checkpoint archives (enable_experimental_restore_via_create = true)") {
		t.Fatalf("doctor does not report restore as possible on containerd 2.3.7: %s", out)
	}
	// The restore is visible: annotation with the archive's digest, metrics.
	list, err := b.api().Pods(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Items {
		if p.Name == b.podName("hog-moved") && !strings.HasPrefix(p.Annotations["checkpoint.knode.io/restored-from"], name+"@sha256:") {
			t.Fatalf("restored-from annotation: %q", p.Annotations["checkpoint.knode.io/restored-from"])
		}
	}
	if got := metricValue(t, b.api(), "knode_restores_total", map[string]string{"result": "success"}); got != 1 {
		t.Fatalf("knode_restores_total{result=success} = %v", got)
	}
}

func TestRestoreFailures(t *testing.T) {
	t.Parallel()
	// containerd 2.4.2 cannot restore through CRI: RestoreNotSupported.
	n := newNodeWithCRIU(t, criu41(t))
	n.writeManifest("src.yaml", podManifest("src", "default", "Always", "exec sleep 3600"))
	n.startKnode("--restore-dirs", filepath.Join(n.dir, "extra"))
	n.waitRunning("default", "src", "main")
	n.waitKnodeRunning("default", "src", "main")
	code, _, body := n.raw("POST", n.checkpointPath("default", "src", "main", ""))
	if code != 200 {
		t.Fatalf("checkpoint: %d %s", code, body)
	}
	var answer struct{ Items []string }
	json.Unmarshal([]byte(body), &answer)
	archive := answer.Items[0]

	restorePod := func(name, ref, extra string) string {
		return `apiVersion: v1
kind: Pod
metadata:
  name: ` + name + `
  annotations:
    checkpoint.knode.io/restore-main: "` + ref + `"` + extra + `
spec:
  containers:
  - {name: main, image: ` + busybox + `, command: ["sleep", "3600"]}
`
	}
	outside := filepath.Join(n.dir, "outside.tar")
	data, _ := os.ReadFile(archive)
	os.WriteFile(outside, data, 0o600)
	os.MkdirAll(filepath.Join(n.dir, "extra"), 0o700)
	notArchive := filepath.Join(n.dir, "extra", "junk.tar")
	os.WriteFile(notArchive, []byte("not a tar"), 0o600)

	n.writeManifest("r1.yaml", restorePod("r1", archive, ""))
	n.writeManifest("r2.yaml", restorePod("r2", outside, ""))
	n.writeManifest("r3.yaml", restorePod("r3", notArchive, ""))
	n.writeManifest("r4.yaml", restorePod("r4", "checkpoint-missing_default-main-2026-01-01T00:00:00Z.tar", ""))
	n.writeManifest("r5.yaml", restorePod("r5", archive, "\n    checkpoint.knode.io/restore-fallback: image"))
	want := map[string]string{"r1": "RestoreNotSupported", "r2": "CheckpointNotFound", "r3": "InvalidCheckpoint", "r4": "CheckpointNotFound"}
	n.eventually(60*time.Second, "each bad restore to fail with its reason", func() bool {
		list, err := n.api().Pods(t.Context())
		if err != nil {
			return false
		}
		got := map[string]string{}
		for _, p := range list.Items {
			got[strings.TrimSuffix(p.Name, "-"+n.name)] = string(p.Status.Phase) + "/" + p.Status.Reason
		}
		for pod, reason := range want {
			if got[pod] != "Failed/"+reason {
				return false
			}
		}
		return true
	})
	// The fallback pod runs from its image and says so.
	n.waitRunning("default", "r5", "main")
	pod, _ := n.api().Pods(t.Context())
	for _, p := range pod.Items {
		if p.Name == n.podName("r5") && !strings.Contains(p.Status.Message, "started fresh from its image") {
			t.Fatalf("fallback not reported: %q", p.Status.Message)
		}
		if p.Name == n.podName("r1") && !strings.Contains(p.Status.Message, "containerd 2.1–2.3") {
			t.Fatalf("RestoreNotSupported message does not say which runtimes can: %q", p.Status.Message)
		}
	}
	for _, pod := range []string{"r1", "r2", "r3", "r4"} {
		if len(n.containers("default", pod, "")) != 0 {
			t.Fatalf("%s: a container was created for a failed restore", pod)
		}
	}
	// knode doctor checkpoint says containerd 2.4 cannot restore.
	out, _ := exec.Command(knodeBinary, "doctor", "checkpoint", "-o", "json", "--root-dir", n.rootDir(),
		"--container-runtime-endpoint", n.endpoint(), "--hostname-override", n.name).Output()
	if !strings.Contains(string(out), "cannot restore a checkpoint through CRI") {
		t.Fatalf("doctor does not report that containerd 2.4 cannot restore: %s", out)
	}
}
