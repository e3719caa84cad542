package integration

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criu41 is the CRIU 4.1 wrapper hack/setup-criu.sh installs.
func criu41(t *testing.T) string {
	return tool(t, "hack/setup-criu.sh", "criu-trixie", "wrapper", "criu")
}

func archiveMembers(t *testing.T, path string) map[string]int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	members := map[string]int64{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return members
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		members[h.Name] = h.Size
	}
}

func TestCheckpointRealRuntime(t *testing.T) {
	t.Parallel()
	n := newNodeWithCRIU(t, criu41(t))
	n.writeManifest("counter.yaml", `apiVersion: v1
kind: Pod
metadata: {name: counter}
spec:
  containers:
  - name: count
    image: `+busybox+`
    command: ["sh", "-c", "i=0; while true; do echo $i; i=$((i+1)); sleep 0.2; done"]
`)
	n.startKnode()
	before := n.waitRunning("default", "counter", "count")
	n.waitKnodeRunning("default", "counter", "count")
	code, hdr, body := n.raw("POST", n.checkpointPath("default", "counter", "count", "timeout=60"))
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("checkpoint: %d %q", code, body)
	}
	var answer struct{ Items []string }
	if err := json.Unmarshal([]byte(body), &answer); err != nil || len(answer.Items) != 1 {
		t.Fatalf("answer %q", body)
	}
	archive := answer.Items[0]
	fi, err := os.Stat(archive)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive %s: mode %v err %v, want 0600", archive, fi.Mode(), err)
	}
	members := archiveMembers(t, archive)
	pages := 0
	for name, size := range members {
		if strings.HasPrefix(name, "checkpoint/pages-") && size > 0 {
			pages++
		}
	}
	for _, want := range []string{"checkpoint/inventory.img", "spec.dump", "config.dump", "rootfs-diff.tar"} {
		if _, ok := members[want]; !ok {
			t.Errorf("archive lacks %s", want)
		}
	}
	if pages == 0 {
		t.Errorf("archive holds no memory pages")
	}
	// The container keeps running, same ID.
	time.Sleep(time.Second)
	after := n.running("default", "counter", "count")
	if after == nil || after.Id != before.Id {
		t.Fatalf("container after checkpoint: %v, want %s still running", after, before.Id)
	}
	// Listing and inspection read the real archive.
	code, _, body = n.raw("GET", "/checkpoints?pod="+n.podName("counter"))
	if code != 200 || !strings.Contains(body, filepath.Base(archive)) {
		t.Fatalf("list: %d %s", code, body)
	}
	code, _, body = n.raw("GET", "/checkpoints/"+filepath.Base(archive))
	var d struct {
		Runtime, ContainerID, ContainerName, PodName, PodNamespace, Image string
	}
	if code != 200 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("inspect: %d %s", code, body)
	}
	if d.Runtime != "containerd" || d.ContainerID != before.Id || d.ContainerName != "count" ||
		d.PodName != n.podName("counter") || d.PodNamespace != "default" || d.Image != busybox {
		t.Fatalf("inspect read %+v from spec.dump/config.dump", d)
	}
	if st := n.containerStatus(before.Id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container state %v", st.State)
	}
}

func TestCheckpointWithDebianCRIU(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/sbin/criu"); err != nil {
		t.Fatalf("Debian's criu package is not installed: %v", err)
	}
	n := newNodeWithCRIU(t, "/usr/sbin/criu")
	n.writeManifest("sleeper.yaml", podManifest("sleeper", "default", "Always", `exec sleep 3600`))
	n.startKnode()
	n.waitRunning("default", "sleeper", "main")
	n.waitKnodeRunning("default", "sleeper", "main")
	code, _, body := n.raw("POST", n.checkpointPath("default", "sleeper", "main", ""))
	prefix := "checkpointing of default/" + n.podName("sleeper") + "/main failed ("
	if code != 500 || !strings.HasPrefix(body, prefix) || !strings.Contains(body, "criu failed") {
		t.Fatalf("checkpoint with CRIU 3.17: %d %q, want 500 with the runtime's CRIU error", code, body)
	}
	if !strings.Contains(body, "CRIU is older than 4.1") || !strings.Contains(body, "vvar_vclock") {
		t.Fatalf("the answer does not diagnose the CRIU/kernel problem: %q", body)
	}
	if entries := n.dirEntries(n.checkpointsDir()); len(entries) != 0 {
		t.Fatalf("a failed checkpoint left files: %v", entries)
	}
	// knode doctor checkpoint, with the same CRIU first on PATH, names the problem.
	cmd := exec.Command(knodeBinary, "doctor", "checkpoint", "-o", "json", "--root-dir", n.rootDir(),
		"--container-runtime-endpoint", n.endpoint(), "--hostname-override", n.name)
	cmd.Env = append(os.Environ(), "PATH="+n.criuDir+":"+os.Getenv("PATH"))
	out, err := cmd.Output()
	if err == nil {
		t.Fatalf("doctor exited 0 with a CRIU that cannot checkpoint: %s", out)
	}
	var report struct {
		Results []struct{ Check, Status, Message string }
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("doctor -o json: %v: %s", err, out)
	}
	named := false
	for _, r := range report.Results {
		named = named || (r.Check == "criu" && r.Status == "problem" && strings.Contains(r.Message, "vvar_vclock") && strings.Contains(r.Message, "3.17"))
	}
	if !named {
		t.Fatalf("doctor did not name the CRIU/kernel problem: %s", out)
	}
}
