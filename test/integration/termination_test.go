package integration

import (
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// The kubelet's termination message, read back from real containers: the
// file bound at /dev/termination-log, a custom path written by a non-root
// user, and FallbackToLogsOnError's log tail when the file stays empty
// (one stream: the runtime copies stdout and stderr apart, so their order
// in the log is not the order they were written).
func TestTerminationMessage(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	pod := func(name, container string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
%s`, name, container)
	}
	n.writeManifest("bye.yaml", pod("bye", `  - name: main
    image: `+busybox+`
    command: ["sh", "-c", "printf bye > /dev/termination-log; exit 1"]
`))
	n.writeManifest("custom.yaml", pod("custom", `  - name: main
    image: `+busybox+`
    terminationMessagePath: /tmp/msg
    securityContext: {runAsUser: 1000, runAsGroup: 1000}
    command: ["sh", "-c", "printf 'uid %s' $(id -u) > /tmp/msg"]
`))
	n.writeManifest("fallback.yaml", pod("fallback", `  - name: main
    image: `+busybox+`
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "echo first >&2; echo oops >&2; exit 3"]
`))
	n.startKnode()
	for _, tc := range []struct {
		pod  string
		exit int32
		want string
	}{
		{"bye", 1, "bye"},
		{"custom", 0, "uid 1000"},
		{"fallback", 3, "first\noops\n"},
	} {
		var last v1.ContainerState
		n.eventually(90*time.Second, fmt.Sprintf("pod %s's container terminated with message %q", tc.pod, tc.want), func() bool {
			st, ok := n.containerState(tc.pod, "main")
			last = st
			return ok && st.Terminated != nil && st.Terminated.ExitCode == tc.exit && st.Terminated.Message == tc.want
		})
		if last.Terminated == nil {
			t.Fatalf("pod %s: state %+v", tc.pod, last)
		}
	}
}
