// Package podsecurity holds the kubelet's security admission checks: a pod
// that asks for what this node cannot enforce is refused before anything of
// it runs, with the kubelet's reason and message, instead of running less
// confined than its spec says.
//
//   - sysctls: the kubelet's safe set and --allowed-unsafe-sysctls
//     (SysctlForbidden);
//   - AppArmor profiles on a host without AppArmor (AppArmor);
//   - supplementalGroupsPolicy Strict on a runtime without it
//     (SupplementalGroupsPolicyNotSupported).
//
// hostUsers false on a runtime handler without user namespaces is refused
// where the kubelet refuses it, at the sandbox (internal/userns), since
// only there is the pod's handler known.
package podsecurity

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/version"
	utilsysctl "k8s.io/component-helpers/node/util/sysctl"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/podsupport"
)

// The kubelet's admission reasons.
const (
	ReasonSysctlForbidden                      = "SysctlForbidden"
	ReasonAppArmor                             = "AppArmor"
	ReasonSupplementalGroupsPolicyNotSupported = "SupplementalGroupsPolicyNotSupported"
)

// safeSysctls are the kubelet's safe sysctls (pkg/kubelet/sysctl) with the
// kernel release from which each is namespaced: always allowed.
var safeSysctls = []struct{ name, kernel string }{
	{"kernel.shm_rmid_forced", ""},
	{"net.ipv4.ip_local_port_range", ""},
	{"net.ipv4.tcp_syncookies", ""},
	{"net.ipv4.ping_group_range", ""},
	{"net.ipv4.ip_unprivileged_port_start", ""},
	{"net.ipv4.ip_local_reserved_ports", "3.16"},
	{"net.ipv4.tcp_keepalive_time", "4.5"},
	{"net.ipv4.tcp_fin_timeout", "4.6"},
	{"net.ipv4.tcp_keepalive_intvl", "4.5"},
	{"net.ipv4.tcp_keepalive_probes", "4.5"},
	{"net.ipv4.tcp_rmem", "4.15"},
	{"net.ipv4.tcp_wmem", "4.15"},
	{"net.ipv4.tcp_slow_start_after_idle", "4.15"},
	{"net.ipv4.tcp_notsent_lowat", "4.6"},
}

// SafeSysctls are the safe sysctls namespaced by kernel (a release such as
// "6.18.44-fc"); an unreadable release keeps only those without a minimum,
// as the kubelet does.
func SafeSysctls(kernel string) []string {
	kv, _ := version.ParseGeneric(kernel)
	var out []string
	for _, s := range safeSysctls {
		if s.kernel == "" || (kv != nil && kv.AtLeast(version.MustParseGeneric(s.kernel))) {
			out = append(out, s.name)
		}
	}
	return out
}

// sysctlPattern is the API's sysctl pattern: dot- or slash-separated
// segments, the last may end in '*' (pkg/apis/policy/validation).
var sysctlPattern = regexp.MustCompile(`^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*([a-z0-9][-_a-z0-9]*)?[a-z0-9*]$`)

const sysctlMaxLength = 253

// Allowlist is the kubelet's sysctl allowlist: the safe sysctls and the
// node's allowedUnsafeSysctls, each with the namespace it lives in.
type Allowlist struct {
	sysctls  map[string]utilsysctl.Namespace
	prefixes map[string]utilsysctl.Namespace
}

// NewAllowlist builds the allowlist from sysctls and prefixes ending in
// '*'. Like the kubelet, it refuses (at start) a pattern that is not valid
// or not known to be namespaced: such a sysctl would change the host.
func NewAllowlist(patterns []string) (*Allowlist, error) {
	a := &Allowlist{sysctls: map[string]utilsysctl.Namespace{}, prefixes: map[string]utilsysctl.Namespace{}}
	for _, s := range patterns {
		if len(s) > sysctlMaxLength || !sysctlPattern.MatchString(s) {
			return nil, fmt.Errorf("sysctl %q must have at most %d characters and match regex %s", s, sysctlMaxLength, sysctlPattern.String())
		}
		ns, name, prefixed := utilsysctl.GetNamespace(s)
		if ns == utilsysctl.UnknownNamespace {
			return nil, fmt.Errorf("the sysctls %q are not known to be namespaced", name)
		}
		if prefixed {
			a.prefixes[name] = ns
		} else {
			a.sysctls[name] = ns
		}
	}
	return a, nil
}

// validate allows sysctl if it is listed or matches a prefix, and its
// namespace is the pod's own (a host-network pod shares the host's net.*).
func (a *Allowlist) validate(sysctl string, hostNet, hostIPC, hostUsers bool) error {
	sysctl = utilsysctl.NormalizeName(sysctl)
	shared := func(ns utilsysctl.Namespace) error {
		if (ns == utilsysctl.IPCNamespace && hostIPC) || (ns == utilsysctl.NetNamespace && hostNet) || (ns == utilsysctl.UserNamespace && hostUsers) {
			return fmt.Errorf("%q not allowed with host %s enabled", sysctl, ns)
		}
		return nil
	}
	if ns, ok := a.sysctls[sysctl]; ok {
		return shared(ns)
	}
	for p, ns := range a.prefixes {
		if strings.HasPrefix(sysctl, p) {
			return shared(ns)
		}
	}
	return fmt.Errorf("%q not allowlisted", sysctl)
}

// Admit refuses a pod with a sysctl that is not allowed, as the kubelet's
// sysctl admit handler (SysctlForbidden, "forbidden sysctl: ...").
func (a *Allowlist) Admit(pod *v1.Pod) error {
	if pod.Spec.SecurityContext == nil {
		return nil
	}
	hostUsers := pod.Spec.HostUsers == nil || *pod.Spec.HostUsers
	for _, s := range pod.Spec.SecurityContext.Sysctls {
		if err := a.validate(s.Name, pod.Spec.HostNetwork, pod.Spec.HostIPC, hostUsers); err != nil {
			return podsupport.NewRefusal(ReasonSysctlForbidden, fmt.Sprintf("forbidden sysctl: %v", err))
		}
	}
	return nil
}

// AppArmor refuses, when the host does not enforce AppArmor, a pod that
// asks for a profile other than Unconfined (fields or the deprecated
// annotations), and anywhere an empty Localhost profile name, as the
// kubelet's AppArmor admit handler.
func AppArmor(hostEnabled bool) func(pod *v1.Pod) error {
	return func(pod *v1.Pod) error {
		if !appArmorRequired(pod) {
			return nil
		}
		if !hostEnabled {
			return podsupport.NewRefusal(ReasonAppArmor, "Cannot enforce AppArmor: AppArmor is not enabled on the host")
		}
		for _, c := range allContainers(pod) {
			p := crispec.AppArmorProfileOf(pod, c)
			if p != nil && p.Type == v1.AppArmorProfileTypeLocalhost && (p.LocalhostProfile == nil || strings.TrimSpace(*p.LocalhostProfile) == "") {
				return podsupport.NewRefusal(ReasonAppArmor, fmt.Sprintf("Cannot enforce AppArmor: invalid empty AppArmor profile name: %q", p))
			}
		}
		return nil
	}
}

// appArmorRequired: any profile other than Unconfined, in a field or a
// deprecated annotation. (The kubelet looks at one annotation of the map,
// whichever comes first; knode at all of them.)
func appArmorRequired(pod *v1.Pod) bool {
	confined := func(p *v1.AppArmorProfile) bool { return p != nil && p.Type != v1.AppArmorProfileTypeUnconfined }
	if pod.Spec.SecurityContext != nil && confined(pod.Spec.SecurityContext.AppArmorProfile) {
		return true
	}
	for _, c := range allContainers(pod) {
		if c.SecurityContext != nil && confined(c.SecurityContext.AppArmorProfile) {
			return true
		}
	}
	for k, v := range pod.Annotations {
		if strings.HasPrefix(k, v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) && v != v1.DeprecatedAppArmorBetaProfileNameUnconfined {
			return true
		}
	}
	return false
}

func allContainers(pod *v1.Pod) []*v1.Container {
	var out []*v1.Container
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			out = append(out, &list[i])
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		c := v1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		out = append(out, &c)
	}
	return out
}

// RuntimeStatus is the CRI call that tells what the runtime supports.
type RuntimeStatus interface {
	Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error)
}

// Runtime checks pod features against what the runtime says it supports,
// asking it (CRI Status) at each admission: a runtime upgraded meanwhile
// is seen. An unanswered Status is an error without a reason: the pod's
// admission is tried again.
type Runtime struct {
	Status  RuntimeStatus
	Timeout time.Duration
}

func (r Runtime) status() (*runtimeapi.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), max(r.Timeout, time.Second))
	defer cancel()
	resp, err := r.Status.Status(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("ask the runtime what it supports: %w", err)
	}
	return resp, nil
}

// Admit refuses supplementalGroupsPolicy Strict when the runtime cannot
// apply it, with the kubelet's reason and message.
func (r Runtime) Admit(pod *v1.Pod) error {
	strict := pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.SupplementalGroupsPolicy != nil &&
		*pod.Spec.SecurityContext.SupplementalGroupsPolicy == v1.SupplementalGroupsPolicyStrict
	if !strict {
		return nil
	}
	resp, err := r.status()
	if err != nil {
		return err
	}
	if !resp.GetFeatures().GetSupplementalGroupsPolicy() {
		return podsupport.NewRefusal(ReasonSupplementalGroupsPolicyNotSupported,
			fmt.Sprintf("SupplementalGroupsPolicy=%s is not supported in this node", v1.SupplementalGroupsPolicyStrict))
	}
	return nil
}
