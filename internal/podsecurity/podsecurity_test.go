package podsecurity

import (
	"context"
	"errors"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func reasonOf(err error) string {
	var r interface{ Reason() string }
	if errors.As(err, &r) {
		return r.Reason()
	}
	return ""
}

func sysctlPod(hostNet, hostIPC bool, names ...string) *v1.Pod {
	pod := &v1.Pod{Spec: v1.PodSpec{HostNetwork: hostNet, HostIPC: hostIPC, SecurityContext: &v1.PodSecurityContext{}}}
	for _, n := range names {
		pod.Spec.SecurityContext.Sysctls = append(pod.Spec.SecurityContext.Sysctls, v1.Sysctl{Name: n, Value: "1"})
	}
	return pod
}

func TestSafeSysctlsByKernel(t *testing.T) {
	all := SafeSysctls("6.18.44-fc-v657")
	for _, want := range []string{"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
		"net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
		"net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
		"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"} {
		if !slices.Contains(all, want) {
			t.Errorf("safe set on 6.18 lacks %s", want)
		}
	}
	old := SafeSysctls("4.4.0")
	if slices.Contains(old, "net.ipv4.tcp_keepalive_time") || !slices.Contains(old, "net.ipv4.ip_local_reserved_ports") {
		t.Errorf("safe set on 4.4: %v", old)
	}
	if got := SafeSysctls("garbage"); len(got) != 5 {
		t.Errorf("unreadable kernel: %v", got)
	}
}

func TestSysctlAdmission(t *testing.T) {
	a, err := NewAllowlist(append(SafeSysctls("6.18"), "kernel.msg*", "net.core.somaxconn"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		pod  *v1.Pod
		want string
	}{
		{"no sysctls", &v1.Pod{}, ""},
		{"safe", sysctlPod(false, false, "net.ipv4.ip_local_port_range", "kernel.shm_rmid_forced", "net.ipv4.tcp_rmem"), ""},
		{"safe, slash form", sysctlPod(false, false, "net/ipv4/tcp_syncookies"), ""},
		{"allowed by pattern", sysctlPod(false, false, "kernel.msgmax"), ""},
		{"allowed by name", sysctlPod(false, false, "net.core.somaxconn"), ""},
		{"not allowlisted", sysctlPod(false, false, "net.ipv4.ip_forward"), `forbidden sysctl: "net.ipv4.ip_forward" not allowlisted`},
		{"host-wide", sysctlPod(false, false, "kernel.panic"), `forbidden sysctl: "kernel.panic" not allowlisted`},
		{"net with host network", sysctlPod(true, false, "net.ipv4.ip_local_port_range"), `forbidden sysctl: "net.ipv4.ip_local_port_range" not allowed with host Net enabled`},
		{"ipc with host IPC", sysctlPod(false, true, "kernel.shm_rmid_forced"), `forbidden sysctl: "kernel.shm_rmid_forced" not allowed with host IPC enabled`},
		{"ipc prefix with host IPC", sysctlPod(false, true, "kernel.msgmnb"), `forbidden sysctl: "kernel.msgmnb" not allowed with host IPC enabled`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := a.Admit(tt.pod)
			got := ""
			if err != nil {
				got = err.Error()
				if reasonOf(err) != "SysctlForbidden" {
					t.Errorf("reason %q", reasonOf(err))
				}
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAllowlistRefusesHostWideSysctls(t *testing.T) {
	for _, bad := range []string{"kernel.panic", "vm.*", "kernel.*", "Net.core", "net..x", ""} {
		if _, err := NewAllowlist([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := NewAllowlist([]string{"net.*", "fs.mqueue.*", "kernel.sem", "kernel.shm*"}); err != nil {
		t.Error(err)
	}
}

func TestAppArmorAdmission(t *testing.T) {
	localhost, empty := "k8s-nginx", " "
	withProfile := func(p *v1.AppArmorProfile) *v1.Pod {
		return &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", SecurityContext: &v1.SecurityContext{AppArmorProfile: p}}}}}
	}
	annotated := func(v string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metaWith("container.apparmor.security.beta.kubernetes.io/app", v), Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app"}}}}
	}
	const off = "Cannot enforce AppArmor: AppArmor is not enabled on the host"
	for _, tt := range []struct {
		name          string
		pod           *v1.Pod
		host          bool
		want          string
		wantReasonSet bool
	}{
		{"none", &v1.Pod{}, false, "", false},
		{"Unconfined on a host without AppArmor", withProfile(&v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}), false, "", false},
		{"unconfined annotation", annotated("unconfined"), false, "", false},
		{"RuntimeDefault on a host without AppArmor", withProfile(&v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}), false, off, true},
		{"pod-level Localhost", &v1.Pod{Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: &localhost}}}}, false, off, true},
		{"deprecated annotation", annotated("runtime/default"), false, off, true},
		{"RuntimeDefault with AppArmor", withProfile(&v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}), true, "", false},
		{"Localhost with AppArmor", withProfile(&v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: &localhost}), true, "", false},
		{"empty Localhost name with AppArmor", withProfile(&v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: &empty}), true,
			`Cannot enforce AppArmor: invalid empty AppArmor profile name: "&AppArmorProfile{Type:Localhost,LocalhostProfile:* ,}"`, true},
		{"empty annotation name with AppArmor", annotated("localhost/"), true,
			`Cannot enforce AppArmor: invalid empty AppArmor profile name: "&AppArmorProfile{Type:Localhost,LocalhostProfile:*,}"`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := AppArmor(tt.host)(tt.pod)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want || (reasonOf(err) == "AppArmor") != tt.wantReasonSet {
				t.Errorf("got %q (%q), want %q", got, reasonOf(err), tt.want)
			}
		})
	}
}

type fakeStatus struct {
	resp *runtimeapi.StatusResponse
	err  error
}

func (f fakeStatus) Status(context.Context, bool) (*runtimeapi.StatusResponse, error) {
	return f.resp, f.err
}

func TestRuntimeFeatures(t *testing.T) {
	strict, no := v1.SupplementalGroupsPolicyStrict, false
	strictPod := &v1.Pod{Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{SupplementalGroupsPolicy: &strict}}}
	usernsPod := &v1.Pod{Spec: v1.PodSpec{HostUsers: &no}}
	bare := &runtimeapi.StatusResponse{RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{}}}}
	full := &runtimeapi.StatusResponse{Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true}}
	for _, tt := range []struct {
		name         string
		pod          *v1.Pod
		resp         *runtimeapi.StatusResponse
		reason, want string
	}{
		{"plain pod asks nothing", &v1.Pod{}, nil, "", ""},
		{"Strict without support", strictPod, bare, "SupplementalGroupsPolicyNotSupported", "SupplementalGroupsPolicy=Strict is not supported in this node"},
		{"Strict with support", strictPod, full, "", ""},
		// Left to the sandbox, on the pod's own runtime handler.
		{"hostUsers false", usernsPod, bare, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Runtime{Status: fakeStatus{resp: tt.resp}}.Admit(tt.pod)
			if reasonOf(err) != tt.reason || (err != nil) != (tt.want != "") || (err != nil && err.Error() != tt.want) {
				t.Errorf("got %v (%q), want %q (%q)", err, reasonOf(err), tt.want, tt.reason)
			}
		})
	}
	// A runtime that does not answer: retried, not refused.
	err := Runtime{Status: fakeStatus{err: errors.New("unavailable")}}.Admit(strictPod)
	if err == nil || reasonOf(err) != "" {
		t.Errorf("unanswered Status: %v (%q)", err, reasonOf(err))
	}
}

func metaWith(k, v string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Annotations: map[string]string{k: v}}
}
