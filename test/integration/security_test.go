package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/containerd"
	"knode.io/knode/test/images"
)

// userImagesDir holds the busybox images that run as a user (built once).
var (
	userImagesOnce sync.Once
	userImagesDir  string
	userImagesErr  error
)

// importUserImages imports the named-user and UID busybox images into the
// node's containerd.
func (n *node) importUserImages() {
	n.t.Helper()
	userImagesOnce.Do(func() {
		userImagesDir = filepath.Join(filepath.Dir(imageDir), "user-images")
		if userImagesErr = os.MkdirAll(userImagesDir, 0o755); userImagesErr != nil {
			return
		}
		userImagesErr = images.WriteBusyboxUsers(filepath.Join(userImagesDir, "named.tar"), filepath.Join(userImagesDir, "uid.tar"), "/bin/busybox")
	})
	if userImagesErr != nil {
		n.t.Fatal(userImagesErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := containerd.ImportArchives(ctx, n.runtime.Binary(), n.layout().Socket(), userImagesDir); err != nil {
		n.t.Fatalf("import user images: %v", err)
	}
}

// podFailure waits for the static pod to be Failed and returns its reason
// and message.
func (n *node) podFailure(pod string) (reason, message string) {
	n.t.Helper()
	n.eventually(90*time.Second, "pod "+pod+" Failed", func() bool {
		p := n.apiPod(n.podName(pod))
		if p != nil && p.Status.Phase == v1.PodFailed {
			reason, message = p.Status.Reason, p.Status.Message
			return true
		}
		return false
	})
	return reason, message
}

// execIn runs cmd in the pod's running container and returns its output.
func (n *node) execIn(pod, container string, cmd ...string) string {
	n.t.Helper()
	c := n.waitRunning("default", pod, container)
	return strings.TrimSpace(execOut(n, c.Id, cmd...))
}

// securityPod is a static pod whose one container sleeps; spec is
// indented YAML added under the pod's spec, container under the container.
func securityPod(name, image, spec, container string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 0
%s  containers:
  - name: main
    image: %s
    command: ["sleep", "3600"]
%s`, name, spec, image, container)
}

// statusField is a line of /proc/self/status read from inside the container.
func (n *node) statusField(pod, field string) string {
	out := n.execIn(pod, "main", "grep", "^"+field+":", "/proc/self/status")
	return strings.Join(strings.Fields(strings.TrimPrefix(out, field+":")), " ")
}

// TestSecurityContextInsideContainers reads each security setting back from
// inside real containers: seccomp mode (and a Localhost profile's effect),
// the masked and read-only /proc paths (none for a privileged container),
// users and groups from id, capabilities, no_new_privs, the read-only root,
// and the safe and allowed sysctls.
func TestSecurityContextInsideContainers(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.importUserImages()
	// A Localhost profile that allows everything but mkdir (EPERM).
	seccompDir := filepath.Join(n.rootDir(), "seccomp", "team")
	if err := os.MkdirAll(seccompDir, 0o755); err != nil {
		t.Fatal(err)
	}
	profile := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`
	if err := os.WriteFile(filepath.Join(seccompDir, "no-mkdir.json"), []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	n.writeManifest("plain.yaml", securityPod("plain", busybox, "", ""))
	n.writeManifest("rtdefault.yaml", securityPod("rtdefault", busybox, "", `    securityContext:
      seccompProfile: {type: RuntimeDefault}
`))
	n.writeManifest("localhost.yaml", securityPod("localhost", busybox, `  securityContext:
    seccompProfile: {type: Localhost, localhostProfile: team/no-mkdir.json}
`, ""))
	n.writeManifest("privileged.yaml", securityPod("privileged", busybox, "", `    securityContext: {privileged: true}
`))
	n.writeManifest("ids.yaml", securityPod("ids", images.BusyboxNamedUser, `  securityContext:
    runAsUser: 1001
    runAsGroup: 2000
    fsGroup: 3000
    supplementalGroups: [4000]
`, `    securityContext:
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
`))
	n.writeManifest("merge.yaml", securityPod("merge", images.BusyboxUID, `  securityContext: {runAsNonRoot: true}
`, ""))
	n.writeManifest("strict.yaml", securityPod("strict", images.BusyboxUID, `  securityContext: {runAsNonRoot: true, supplementalGroupsPolicy: Strict}
`, ""))
	n.writeManifest("sysctls.yaml", securityPod("sysctls", busybox, `  securityContext:
    sysctls:
    - {name: net.ipv4.ip_local_port_range, value: "20000 30000"}
    - {name: kernel.shm_rmid_forced, value: "1"}
    - {name: net.core.somaxconn, value: "777"}
`, ""))
	n.startKnode("--seccomp-default", "--allowed-unsafe-sysctls", "net.core.somaxconn")

	// Seccomp: 2 is filter mode, 0 none. seccompDefault gives a container
	// without a profile the runtime's default; a privileged one runs
	// unconfined as the runtime makes it.
	for pod, want := range map[string]string{"plain": "2", "rtdefault": "2", "localhost": "2", "privileged": "0"} {
		if got := n.statusField(pod, "Seccomp"); got != want {
			t.Errorf("pod %s: Seccomp %q, want %q", pod, got, want)
		}
	}
	if out := n.execIn("localhost", "main", "sh", "-c", "mkdir /tmp/x 2>&1; echo rc=$?"); !strings.Contains(out, "rc=1") {
		t.Errorf("the Localhost profile did not refuse mkdir: %q", out)
	}
	if out := n.execIn("plain", "main", "sh", "-c", "mkdir /tmp/x && echo made"); out != "made" {
		t.Errorf("RuntimeDefault refused mkdir: %q", out)
	}

	// The kubelet's masked paths read as empty, /proc/sys is read-only; a
	// privileged container sees the host's.
	// (/proc/kcore and others do not exist on every kernel: these do here.)
	const readMasked = "cat /proc/interrupts | wc -c; cat /proc/timer_list | wc -c; cat /proc/keys | wc -c; ls /sys/firmware | wc -l"
	if out := strings.Fields(n.execIn("plain", "main", "sh", "-c", readMasked)); strings.Join(out, " ") != "0 0 0 0" {
		t.Errorf("masked paths show content: %q", out)
	}
	if out := n.execIn("plain", "main", "sh", "-c", "echo 1 > /proc/sys/kernel/shm_rmid_forced 2>&1; echo rc=$?; grep ' /proc/sys ' /proc/self/mountinfo"); !strings.Contains(out, "rc=1") || !strings.Contains(out, " ro,") {
		t.Errorf("/proc/sys is writable: %q", out)
	}
	if out := strings.Fields(n.execIn("privileged", "main", "sh", "-c", readMasked)); len(out) != 4 || out[0] == "0" || out[1] == "0" || out[3] == "0" {
		t.Errorf("privileged container: paths masked: %q", out)
	}

	// Users and groups: fsGroup and supplementalGroups are added; the
	// image's named user is replaced by runAsUser.
	if got := n.execIn("ids", "main", "id"); got != "uid=1001 gid=2000 groups=2000,3000,4000" {
		t.Errorf("id: %q", got)
	}
	if got := n.statusField("ids", "CapBnd"); got != "0000000000000400" {
		t.Errorf("CapBnd %q, want NET_BIND_SERVICE only (a non-root user has no effective capabilities)", got)
	}
	if got := n.statusField("ids", "NoNewPrivs"); got != "1" {
		t.Errorf("NoNewPrivs %q", got)
	}
	if out := n.execIn("ids", "main", "sh", "-c", "touch /x 2>&1; echo rc=$?"); !strings.Contains(out, "Read-only file system") {
		t.Errorf("root filesystem writable: %q", out)
	}
	// Merge adds the image's /etc/group memberships, Strict does not.
	if got := n.execIn("merge", "main", "id"); got != "uid=1000(app) gid=1000(app) groups=1000(app),5000(extra)" {
		t.Errorf("Merge: id %q", got)
	}
	if got := n.execIn("strict", "main", "id"); got != "uid=1000(app) gid=1000(app) groups=1000(app)" {
		t.Errorf("Strict: id %q", got)
	}

	// Sysctls in the pod's namespaces.
	if got := n.execIn("sysctls", "main", "sh", "-c", "cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/kernel/shm_rmid_forced /proc/sys/net/core/somaxconn"); strings.Join(strings.Fields(got), " ") != "20000 30000 1 777" {
		t.Errorf("sysctls: %q", got)
	}
}

// TestSecurityRefusals: what the node cannot enforce or knode does not
// implement is refused before anything runs (phase Failed with the
// kubelet's reason) or, for the image's user, at container creation with
// CreateContainerConfigError and the kubelet's messages.
func TestSecurityRefusals(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.importUserImages()
	n.writeManifest("sysctl.yaml", securityPod("sysctl", busybox, `  securityContext:
    sysctls: [{name: kernel.msgmax, value: "65536"}]
`, ""))
	n.writeManifest("hostnet-sysctl.yaml", securityPod("hostnet-sysctl", busybox, `  hostNetwork: true
  securityContext:
    sysctls: [{name: net.ipv4.ip_local_port_range, value: "20000 30000"}]
`, ""))
	n.writeManifest("apparmor.yaml", securityPod("apparmor", busybox, "", `    securityContext:
      appArmorProfile: {type: RuntimeDefault}
`))
	n.writeManifest("apparmor-annotation.yaml", strings.Replace(securityPod("apparmor-annotation", busybox, "", ""),
		"metadata: {name: apparmor-annotation}", "metadata:\n  name: apparmor-annotation\n  annotations: {container.apparmor.security.beta.kubernetes.io/main: localhost/k8s-nginx}", 1))
	n.writeManifest("unconfined.yaml", securityPod("unconfined", busybox, `  securityContext:
    appArmorProfile: {type: Unconfined}
`, ""))
	n.writeManifest("claims.yaml", securityPod("claims", busybox, `  resourceClaims:
  - {name: gpu, resourceClaimName: gpu-claim}
`, ""))
	n.writeManifest("root.yaml", securityPod("root", busybox, "  securityContext: {runAsNonRoot: true}\n", ""))
	n.writeManifest("named.yaml", securityPod("named", images.BusyboxNamedUser, "  securityContext: {runAsNonRoot: true}\n", ""))
	n.writeManifest("root-uid.yaml", securityPod("root-uid", images.BusyboxUID, "  securityContext: {runAsNonRoot: true}\n", `    securityContext: {runAsUser: 0}
`))
	n.writeManifest("named-ok.yaml", securityPod("named-ok", images.BusyboxNamedUser, "  securityContext: {runAsNonRoot: true, runAsUser: 1000}\n", ""))
	n.startKnode()

	for _, tc := range []struct{ pod, reason, message string }{
		{"sysctl", "SysctlForbidden", `forbidden sysctl: "kernel.msgmax" not allowlisted`},
		{"hostnet-sysctl", "SysctlForbidden", `forbidden sysctl: "net.ipv4.ip_local_port_range" not allowed with host Net enabled`},
		{"apparmor", "AppArmor", "Cannot enforce AppArmor: AppArmor is not enabled on the host"},
		{"apparmor-annotation", "AppArmor", "Cannot enforce AppArmor: AppArmor is not enabled on the host"},
		{"claims", "PodFieldNotSupported", "spec.resourceClaims: the field spec.resourceClaims is not supported by knode: dynamic resource allocation is not implemented"},
	} {
		reason, message := n.podFailure(tc.pod)
		if reason != tc.reason || message != tc.message {
			t.Errorf("pod %s: %s %q, want %s %q", tc.pod, reason, message, tc.reason, tc.message)
		}
		if sbs := n.sandboxes("default", tc.pod); len(sbs) != 0 {
			t.Errorf("pod %s was refused but has %d sandboxes", tc.pod, len(sbs))
		}
	}
	uid := func(pod string) string {
		p := n.apiPod(n.podName(pod))
		if p == nil {
			t.Fatalf("pod %s not served", pod)
		}
		return string(p.UID)
	}
	for _, tc := range []struct{ pod, message string }{
		{"root", fmt.Sprintf(`container has runAsNonRoot and image will run as root (pod: "%s_default(%s)", container: main)`, n.podName("root"), uid("root"))},
		{"named", fmt.Sprintf(`container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root (pod: "%s_default(%s)", container: main)`, n.podName("named"), uid("named"))},
		{"root-uid", fmt.Sprintf(`container's runAsUser breaks non-root policy (pod: "%s_default(%s)", container: main)`, n.podName("root-uid"), uid("root-uid"))},
	} {
		n.eventually(90*time.Second, "pod "+tc.pod+" held with CreateContainerConfigError", func() bool {
			st, ok := n.containerState(tc.pod, "main")
			return ok && st.Waiting != nil && st.Waiting.Reason == "CreateContainerConfigError" && st.Waiting.Message == tc.message
		})
		if cs := n.containers("default", tc.pod, "main"); len(cs) != 0 {
			t.Errorf("pod %s: %d containers created", tc.pod, len(cs))
		}
	}
	if got := n.execIn("named-ok", "main", "id", "-u"); got != "1000" {
		t.Errorf("named-ok: id -u %q", got)
	}
	n.waitRunning("default", "unconfined", "main")
}
