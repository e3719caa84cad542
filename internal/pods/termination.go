package pods

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/safefs"
)

// The kubelet's termination message limits (pkg/kubelet/container).
const (
	// maxContainerMessage is how much of the termination file is read: its
	// last 4 KiB.
	maxContainerMessage = 4 * 1024
	// maxPodMessages is what all of a pod's messages may take together; each
	// container gets an even share.
	maxPodMessages = 12 * 1024
	// maxLogMessage and maxLogLines are FallbackToLogsOnError's tail: the
	// last 2 KiB of the last 80 lines of the log.
	maxLogMessage = 2 * 1024
	maxLogLines   = 80
	// maxLogWindow bounds how much of a log file is read to find those lines
	// (the kubelet reads back as far as 80 lines go; containerd splits lines
	// at 16 KiB, so 80 of them fit).
	maxLogWindow = 2 << 20
)

// terminationMount makes the file a container instance writes its
// termination message to, as the kubelet does: a new file with a random
// name in <pod dir>/containers/<container>/, mode 0666 whatever the umask so
// a non-root user can write it, created beneath the opened pod dir without
// following any link, and bound read-write at terminationMessagePath.
func (d *podFiles) terminationMount(pod *v1.Pod, c *v1.Container) (*runtimeapi.Mount, error) {
	if c.TerminationMessagePath == "" {
		return nil, nil
	}
	if _, err := crispec.TerminationMessageMount(c, "/"); err != nil {
		return nil, err
	}
	podDir := PodDir(d.RootDir, pod)
	if err := os.MkdirAll(podDir, 0o750); err != nil {
		return nil, fmt.Errorf("create pod dir: %w", err)
	}
	pd, err := safefs.Open(podDir)
	if err != nil {
		return nil, err
	}
	defer pd.Close()
	dir, err := pd.MkdirAll(filepath.Join("containers", c.Name), 0o750)
	if err != nil {
		return nil, fmt.Errorf("create the termination message dir of container %q: %w", c.Name, err)
	}
	defer dir.Close()
	name := fmt.Sprintf("%08x", rand.Uint32())
	f, err := dir.OpenFile(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o666, safefs.NoSymlinks)
	if err != nil {
		return nil, fmt.Errorf("create the termination message file of container %q: %w", c.Name, err)
	}
	err = f.Chmod(0o666)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create the termination message file of container %q: %w", c.Name, err)
	}
	return crispec.TerminationMessageMount(c, filepath.Join(podDir, "containers", c.Name, name))
}

// terminationMessage is what the kubelet adds to an exited container's
// message: the file bound at its terminationMessagePath (as the instance's
// annotations recorded it), or with FallbackToLogsOnError, when that is
// empty and the container failed, the tail of its log. The runtime's own
// message comes first, joined by ": ". Both files are read beneath their
// opened directories (the pod dir, the pod's log dir), never through a
// link and never more than the limits: the container wrote them.
// ok is false when a file could not be read (the message says why).
func (d *podFiles) terminationMessage(pod *v1.Pod, rst *runtimeapi.ContainerStatus) (string, bool) {
	msg, ok := d.readTerminationMessage(pod, rst)
	if rst.Message == "" || msg == "" {
		return rst.Message + msg, ok
	}
	return rst.Message + ": " + msg, ok
}

func (d *podFiles) readTerminationMessage(pod *v1.Pod, rst *runtimeapi.ContainerStatus) (string, bool) {
	path := rst.GetAnnotations()[crispec.AnnotationTerminationMessagePath]
	policy := v1.TerminationMessagePolicy(rst.GetAnnotations()[crispec.AnnotationTerminationMsgPolicy])
	// A container that could not even start has no log to fall back to.
	fallback := policy == v1.TerminationMessageFallbackToLogsOnError && rst.ExitCode != 0 && rst.Reason != "ContainerCannotRun"
	for _, m := range rst.Mounts {
		if path == "" || m.ContainerPath != path {
			continue
		}
		data, _, err := readBeneath(PodDir(d.RootDir, pod), m.HostPath, maxContainerMessage)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return fmt.Sprintf("Error on reading termination log %s: %v", m.HostPath, err), false
		}
		if len(data) > 0 || !fallback {
			return string(data), true
		}
		break
	}
	if !fallback {
		return "", true
	}
	msg, err := readLogTail(LogDir(d.PodLogsDir, pod), rst.LogPath)
	if err != nil {
		return fmt.Sprintf("Error on reading termination message from logs: %v", err), false
	}
	return msg, true
}

// readBeneath reads the last limit bytes of the file at p, and its size;
// p must lie beneath dir (a path the runtime reports is checked, not
// trusted) and is opened beneath it without following any link.
func readBeneath(dir, p string, limit int64) ([]byte, int64, error) {
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return nil, 0, fmt.Errorf("%s is not beneath %s", p, dir)
	}
	d, err := safefs.Open(dir)
	if err != nil {
		return nil, 0, err
	}
	defer d.Close()
	return d.ReadTail(rel, limit)
}

// readLogTail is the kubelet's readLastStringFromContainerLogs: the
// content of the last 80 lines of the container's CRI log (stdout and
// stderr alike, partial lines joined), of which the last 2 KiB. It reads a
// window from the end of the file, widening it until the window holds 80
// whole lines, enough content, the whole file, or maxLogWindow.
func readLogTail(logDir, logPath string) (string, error) {
	if logPath == "" {
		return "", errors.New("the container has no log path")
	}
	for window := int64(16 * 1024); ; window *= 2 {
		data, size, err := readBeneath(logDir, logPath, window)
		if err != nil {
			return "", err
		}
		whole := int64(len(data)) >= size
		var cut []byte
		if !whole {
			// The first line in the window may be cut; whole lines start
			// after its newline.
			i := bytes.IndexByte(data, '\n')
			cut, data = data, nil
			if i >= 0 {
				cut, data = cut[:i+1], cut[i+1:]
			}
		}
		content, lines := criLogContent(data, maxLogLines)
		last := window >= maxLogWindow
		if whole || lines >= maxLogLines || len(content) >= maxLogMessage || last {
			if last && !whole && lines < maxLogLines {
				// A line longer than the window: what the window holds of it
				// is its content (its prefix is further back).
				content = append(cut, content...)
			}
			if len(content) > maxLogMessage {
				content = content[len(content)-maxLogMessage:]
			}
			return string(content), nil
		}
	}
}

// criLogContent decodes the last n lines of CRI log data ("<time> <stream>
// <tag> <content>"): a line tagged P continues in the next one, any other
// ends with a newline. It returns the content and how many lines it used.
func criLogContent(data []byte, n int) ([]byte, int) {
	raw := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if len(data) == 0 {
		raw = nil
	}
	if len(raw) > n {
		raw = raw[len(raw)-n:]
	}
	var out []byte
	for _, l := range raw {
		f := bytes.SplitN(l, []byte(" "), 4)
		if len(f) < 3 {
			continue // not a CRI log line; the kubelet skips what it cannot parse
		}
		content := []byte{}
		if len(f) == 4 {
			content = f[3]
		}
		out = append(out, content...)
		if !bytes.Equal(f[2], []byte("P")) {
			out = append(out, '\n')
		}
	}
	return out, len(raw)
}

// limitPodMessages truncates every terminated state's message to an even
// share of the pod's 12 KiB, keeping the start, as the kubelet's status
// manager does before it reports a status.
func limitPodMessages(pod *v1.Pod, st *v1.PodStatus) {
	per := maxPodMessages
	if n := len(pod.Spec.Containers) + len(pod.Spec.InitContainers); n > 0 {
		per /= n
	}
	cut := func(s *v1.ContainerState) {
		if s.Terminated != nil && len(s.Terminated.Message) > per {
			s.Terminated.Message = s.Terminated.Message[:per]
		}
	}
	for _, list := range [][]v1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses, st.EphemeralContainerStatuses} {
		for i := range list {
			cut(&list[i].State)
			cut(&list[i].LastTerminationState)
		}
	}
}
