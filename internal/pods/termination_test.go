package pods

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/crispec"
)

func termPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-term"},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "app", TerminationMessagePath: "/dev/termination-log"}}},
	}
}

// exited is the runtime's status of an instance that had the termination
// file at host bound at /dev/termination-log and logged to log.
func exited(policy v1.TerminationMessagePolicy, exit int32, host, log string) *runtimeapi.ContainerStatus {
	return &runtimeapi.ContainerStatus{
		ExitCode: exit,
		Annotations: map[string]string{
			crispec.AnnotationTerminationMessagePath: "/dev/termination-log",
			crispec.AnnotationTerminationMsgPolicy:   string(policy),
		},
		Mounts:  []*runtimeapi.Mount{{ContainerPath: "/dev/termination-log", HostPath: host}},
		LogPath: log,
	}
}

func TestTerminationMount(t *testing.T) {
	d := &podFiles{RootDir: t.TempDir()}
	pod := termPod()
	m, err := d.terminationMount(pod, &pod.Spec.Containers[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(PodDir(d.RootDir, pod), "containers", "app")
	if m.ContainerPath != "/dev/termination-log" || filepath.Dir(m.HostPath) != dir || m.Readonly {
		t.Fatalf("mount = %v, want a read-write bind of a file in %s", m, dir)
	}
	fi, err := os.Lstat(m.HostPath)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o666 {
		t.Fatalf("termination file: %v, %v; want a regular file with mode 0666", fi, err)
	}
	again, err := d.terminationMount(pod, &pod.Spec.Containers[0])
	if err != nil || again.HostPath == m.HostPath {
		t.Fatalf("the next instance got %v, %v; want a new file", again, err)
	}
	// A link planted where the dir goes is not followed.
	pod2 := termPod()
	pod2.UID = "uid-planted"
	if err := os.MkdirAll(PodDir(d.RootDir, pod2), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(PodDir(d.RootDir, pod2), "containers")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.terminationMount(pod2, &pod2.Spec.Containers[0]); err == nil {
		t.Fatal("a link in the pod dir was followed")
	}
}

func TestTerminationMessage(t *testing.T) {
	d := &podFiles{RootDir: t.TempDir(), PodLogsDir: t.TempDir()}
	pod := termPod()
	cdir := filepath.Join(PodDir(d.RootDir, pod), "containers", "app")
	logDir := LogDir(d.PodLogsDir, pod)
	for _, p := range []string{cdir, filepath.Join(logDir, "app")} {
		if err := os.MkdirAll(p, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) string {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o666); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var log strings.Builder
	for i := range 100 {
		fmt.Fprintf(&log, "2026-11-30T00:00:00.000000000Z stdout F line %d %s\n", i, strings.Repeat("z", 30))
	}
	log.WriteString("2026-11-30T00:00:00.000000000Z stderr P part-\n2026-11-30T00:00:00.000000000Z stderr F end\n")
	logPath := write(filepath.Join(logDir, "app", "0.log"), log.String())
	bye := write(filepath.Join(cdir, "bye"), "bye")
	empty := write(filepath.Join(cdir, "empty"), "")
	big := write(filepath.Join(cdir, "big"), strings.Repeat("x", 5000)+"TAIL")
	outside := write(filepath.Join(t.TempDir(), "secret"), "secret")
	if err := os.Symlink(outside, filepath.Join(cdir, "link")); err != nil {
		t.Fatal(err)
	}
	// A huge log line: only the bounded tail is read.
	hugeLog := write(filepath.Join(logDir, "app", "1.log"), "2026-11-30T00:00:00Z stdout F "+strings.Repeat("y", 3<<20)+"\n")

	wantTail := func() string {
		var b strings.Builder
		for i := 22; i < 100; i++ {
			fmt.Fprintf(&b, "line %d %s\n", i, strings.Repeat("z", 30))
		}
		s := b.String() + "part-end\n"
		return s[len(s)-maxLogMessage:]
	}()
	for _, tc := range []struct {
		name string
		rst  *runtimeapi.ContainerStatus
		want string
	}{
		{"file read", exited(v1.TerminationMessageReadFile, 1, bye, logPath), "bye"},
		{"file read on success", exited(v1.TerminationMessageReadFile, 0, bye, logPath), "bye"},
		{"last 4 KiB of a larger file", exited(v1.TerminationMessageReadFile, 0, big, logPath), strings.Repeat("x", maxContainerMessage-4) + "TAIL"},
		{"empty file, File policy", exited(v1.TerminationMessageReadFile, 1, empty, logPath), ""},
		{"empty file, fallback on failure: last 80 lines, last 2 KiB", exited(v1.TerminationMessageFallbackToLogsOnError, 1, empty, logPath), wantTail},
		{"empty file, fallback but succeeded", exited(v1.TerminationMessageFallbackToLogsOnError, 0, empty, logPath), ""},
		{"file wins over the log", exited(v1.TerminationMessageFallbackToLogsOnError, 1, bye, logPath), "bye"},
		{"missing file falls back", exited(v1.TerminationMessageFallbackToLogsOnError, 2, filepath.Join(cdir, "gone"), logPath), wantTail},
		{"huge log line is cut to 2 KiB", exited(v1.TerminationMessageFallbackToLogsOnError, 2, empty, hugeLog), strings.Repeat("y", maxLogMessage-1) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := d.terminationMessage(pod, tc.rst); got != tc.want || !ok {
				t.Fatalf("message = %q (%d bytes), want %q (%d bytes)", got, len(got), tc.want, len(tc.want))
			}
		})
	}
	for name, host := range map[string]string{"a link": filepath.Join(cdir, "link"), "a path outside the pod dir": outside} {
		got, ok := d.terminationMessage(pod, exited(v1.TerminationMessageReadFile, 1, host, logPath))
		if ok || !strings.HasPrefix(got, "Error on reading termination log") || strings.Contains(got, "secret\"") || got == "secret" {
			t.Errorf("%s: message = %q, want a read error", name, got)
		}
	}
	rst := exited(v1.TerminationMessageReadFile, 137, bye, logPath)
	rst.Message = "OOMKilled"
	if got, _ := d.terminationMessage(pod, rst); got != "OOMKilled: bye" {
		t.Errorf("runtime message joined: %q, want %q", got, "OOMKilled: bye")
	}
}

// TestTerminationMessageReadOnce: an exited container's message is read
// once and kept while the container exists; a failed read is tried again.
func TestTerminationMessageReadOnce(t *testing.T) {
	c := newStatusCache()
	reads := 0
	read := func(msg string, ok bool) func() (string, bool) {
		return func() (string, bool) { reads++; return msg, ok }
	}
	for range 3 {
		if got := c.terminationMessage("c1", read("bye", true)); got != "bye" {
			t.Fatalf("message %q", got)
		}
	}
	if reads != 1 {
		t.Fatalf("read %d times, want once", reads)
	}
	c.terminationMessage("c2", read("Error on reading termination log", false))
	c.terminationMessage("c2", read("later", true))
	if reads != 3 {
		t.Fatalf("a failed read was not tried again (%d reads)", reads)
	}
	c.retain(map[types.UID]*runtimePod{"p": {containers: []*runtimeapi.Container{{Id: "c2"}}}})
	c.terminationMessage("c1", read("again", true))
	if reads != 4 {
		t.Fatal("the message of a removed container was kept")
	}
}

func TestLimitPodMessages(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{InitContainers: []v1.Container{{Name: "i"}}, Containers: []v1.Container{{Name: "a"}, {Name: "b"}}}}
	term := func(n int) v1.ContainerState {
		return v1.ContainerState{Terminated: &v1.ContainerStateTerminated{Message: strings.Repeat("m", n)}}
	}
	st := &v1.PodStatus{
		InitContainerStatuses: []v1.ContainerStatus{{State: term(4096)}},
		ContainerStatuses:     []v1.ContainerStatus{{State: term(5000), LastTerminationState: term(4097)}, {State: term(10)}},
	}
	limitPodMessages(pod, st)
	per := maxPodMessages / 3
	for _, got := range []int{len(st.InitContainerStatuses[0].State.Terminated.Message), len(st.ContainerStatuses[0].State.Terminated.Message), len(st.ContainerStatuses[0].LastTerminationState.Terminated.Message)} {
		if got != per {
			t.Errorf("message length %d, want %d", got, per)
		}
	}
	if got := len(st.ContainerStatuses[1].State.Terminated.Message); got != 10 {
		t.Errorf("short message cut to %d", got)
	}
}
