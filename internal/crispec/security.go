package crispec

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Security is what the security parts of the CRI configs take from the
// node.
type Security struct {
	// SeccompDefault is the kubelet's seccompDefault: a container without a
	// seccomp profile gets the runtime's default instead of none.
	SeccompDefault bool
	// SeccompProfileRoot is <root-dir>/seccomp, where Localhost profiles
	// are looked up.
	SeccompProfileRoot string
	// HostMaskedPaths are the masked paths this host adds to the kubelet's
	// defaults: each possible CPU's thermal_throttle directory that exists.
	HostMaskedPaths []string
}

// defaultMaskedPaths and defaultReadonlyPaths are the kubelet's
// (pkg/securitycontext), kept in step with moby's: a container with the
// Default procMount gets them, and the runtime masks only what the request
// lists.
var (
	defaultMaskedPaths = []string{
		"/proc/asound",
		"/proc/acpi",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
)

// ImageUser is the user an image runs as, from CRI ImageStatus: its
// numeric UID, else its user name; neither means root, as the kubelet
// reads it.
type ImageUser struct {
	UID  *int64
	Name string
}

// ImageUserOf reads the user from an ImageStatus answer's image, as the
// kubelet's getImageUser: the UID if the runtime gave one, else the name,
// else root.
func ImageUserOf(img *runtimeapi.Image) ImageUser {
	if img != nil {
		if img.Uid != nil {
			uid := img.Uid.Value
			return ImageUser{UID: &uid}
		}
		if img.Username != "" {
			return ImageUser{Name: img.Username}
		}
	}
	root := int64(0)
	return ImageUser{UID: &root}
}

// EffectiveSecurityContext merges the pod's security context into the
// container's, the container's fields winning, as the kubelet's
// DetermineEffectiveSecurityContext (Windows options aside).
func EffectiveSecurityContext(pod *v1.Pod, c *v1.Container) *v1.SecurityContext {
	eff := &v1.SecurityContext{}
	if psc := pod.Spec.SecurityContext; psc != nil {
		eff.SELinuxOptions = psc.SELinuxOptions
		eff.RunAsUser = psc.RunAsUser
		eff.RunAsGroup = psc.RunAsGroup
		eff.RunAsNonRoot = psc.RunAsNonRoot
	}
	csc := c.SecurityContext
	if csc == nil {
		return eff
	}
	if csc.SELinuxOptions != nil {
		eff.SELinuxOptions = csc.SELinuxOptions
	}
	eff.Capabilities = csc.Capabilities
	eff.Privileged = csc.Privileged
	if csc.RunAsUser != nil {
		eff.RunAsUser = csc.RunAsUser
	}
	if csc.RunAsGroup != nil {
		eff.RunAsGroup = csc.RunAsGroup
	}
	if csc.RunAsNonRoot != nil {
		eff.RunAsNonRoot = csc.RunAsNonRoot
	}
	eff.ReadOnlyRootFilesystem = csc.ReadOnlyRootFilesystem
	eff.AllowPrivilegeEscalation = csc.AllowPrivilegeEscalation
	eff.ProcMount = csc.ProcMount
	return eff
}

// VerifyRunAsNonRoot refuses a container that must not run as root when
// its user is root or cannot be told, with the kubelet's messages (they
// become the container's CreateContainerConfigError).
func VerifyRunAsNonRoot(pod *v1.Pod, c *v1.Container, user ImageUser) error {
	eff := EffectiveSecurityContext(pod, c)
	if eff.RunAsNonRoot == nil || !*eff.RunAsNonRoot {
		return nil
	}
	if eff.RunAsUser != nil {
		if *eff.RunAsUser == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", podDesc(pod), c.Name)
		}
		return nil
	}
	switch {
	case user.UID == nil && user.Name != "":
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", user.Name, podDesc(pod), c.Name)
	case user.UID != nil:
		if *user.UID == 0 {
			return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", podDesc(pod), c.Name)
		}
		if errs := validation.IsValidUserID(*user.UID); len(errs) > 0 {
			return fmt.Errorf("container has runAsNonRoot and image has an invalid user id (%d). (Must be 1-(%d)): %s (pod: %q, container: %s)",
				*user.UID, math.MaxInt32, strings.Join(errs, "; "), podDesc(pod), c.Name)
		}
	}
	return nil
}

// CheckContainerSecurity refuses what the container's CRI security context
// cannot be built from: runAsNonRoot against the image's user, and a
// Localhost seccomp profile that names no file beneath the profile root
// (the API server validates this for API pods; a static pod's manifest
// is not validated by it).
func CheckContainerSecurity(pod *v1.Pod, c *v1.Container, user ImageUser) error {
	if err := VerifyRunAsNonRoot(pod, c, user); err != nil {
		return err
	}
	if p := seccompField(pod, c); p != nil && p.Type == v1.SeccompProfileTypeLocalhost {
		if p.LocalhostProfile == nil || *p.LocalhostProfile == "" {
			return errors.New("localhostProfile must be set if seccompProfile type is Localhost.")
		}
		if !filepath.IsLocal(*p.LocalhostProfile) {
			return fmt.Errorf("seccomp localhostProfile %q must be a relative path beneath the seccomp profile root, without '..'", *p.LocalhostProfile)
		}
	}
	return nil
}

// seccompField is the seccomp profile the pod gives the container: the
// container's, else the pod's.
func seccompField(pod *v1.Pod, c *v1.Container) *v1.SeccompProfile {
	if c != nil && c.SecurityContext != nil && c.SecurityContext.SeccompProfile != nil {
		return c.SecurityContext.SeccompProfile
	}
	if pod.Spec.SecurityContext != nil {
		return pod.Spec.SecurityContext.SeccompProfile
	}
	return nil
}

// SeccompProfile is the container's CRI seccomp profile, as the kubelet
// picks it: the container's field, else the pod's, else RuntimeDefault
// with seccompDefault and Unconfined without. A Localhost profile is the
// file <root-dir>/seccomp/<localhostProfile>.
func SeccompProfile(pod *v1.Pod, c *v1.Container, sec Security) *runtimeapi.SecurityProfile {
	p := seccompField(pod, c)
	switch {
	case p == nil && sec.SeccompDefault, p != nil && p.Type == v1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	case p != nil && p.Type == v1.SeccompProfileTypeLocalhost:
		name := ""
		if p.LocalhostProfile != nil {
			name = *p.LocalhostProfile
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost,
			LocalhostRef: filepath.Join(sec.SeccompProfileRoot, name)}
	default:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	}
}

// AppArmorProfileOf is the container's AppArmor profile as the kubelet
// picks it: the container's field, else the deprecated per-container
// annotation (static pods keep them), else the pod's field; nil for none.
func AppArmorProfileOf(pod *v1.Pod, c *v1.Container) *v1.AppArmorProfile {
	if c.SecurityContext != nil && c.SecurityContext.AppArmorProfile != nil {
		return c.SecurityContext.AppArmorProfile
	}
	if val, ok := pod.Annotations[v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix+c.Name]; ok {
		switch {
		case val == v1.DeprecatedAppArmorBetaProfileRuntimeDefault:
			return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
		case val == v1.DeprecatedAppArmorBetaProfileNameUnconfined:
			return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}
		case strings.HasPrefix(val, v1.DeprecatedAppArmorBetaProfileNamePrefix):
			name := strings.TrimPrefix(val, v1.DeprecatedAppArmorBetaProfileNamePrefix)
			return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: &name}
		}
	}
	if pod.Spec.SecurityContext != nil {
		return pod.Spec.SecurityContext.AppArmorProfile
	}
	return nil
}

// appArmor is the container's CRI AppArmor profile and the deprecated
// string form older runtimes read, as the kubelet's getAppArmorProfile.
// Admission (podsecurity) has refused a profile the host cannot enforce
// and an empty Localhost name.
func appArmor(pod *v1.Pod, c *v1.Container) (*runtimeapi.SecurityProfile, string) {
	p := AppArmorProfileOf(pod, c)
	if p == nil {
		return nil, ""
	}
	switch p.Type {
	case v1.AppArmorProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, v1.DeprecatedAppArmorBetaProfileRuntimeDefault
	case v1.AppArmorProfileTypeUnconfined:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, v1.DeprecatedAppArmorBetaProfileNameUnconfined
	case v1.AppArmorProfileTypeLocalhost:
		name := ""
		if p.LocalhostProfile != nil {
			name = *p.LocalhostProfile
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: name},
			v1.DeprecatedAppArmorBetaProfileNamePrefix + name
	}
	return nil, ""
}

// procPaths are the masked and read-only paths for a container: the
// kubelet's defaults (with the host's) for the Default procMount, none for
// Unmasked. A privileged container gets none either: the runtimes clear
// them for it, and sending none makes that so whatever the runtime.
func procPaths(eff *v1.SecurityContext, sec Security) (masked, readonly []string) {
	if (eff.ProcMount != nil && *eff.ProcMount == v1.UnmaskedProcMount) || (eff.Privileged != nil && *eff.Privileged) {
		return []string{}, []string{}
	}
	masked = append(append(make([]string, 0, len(defaultMaskedPaths)+len(sec.HostMaskedPaths)), defaultMaskedPaths...), sec.HostMaskedPaths...)
	return masked, append([]string(nil), defaultReadonlyPaths...)
}

func seLinux(o *v1.SELinuxOptions) *runtimeapi.SELinuxOption {
	if o == nil {
		return nil
	}
	return &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}

// supplementalGroups are the pod's groups for CRI: fsGroup first, then
// supplementalGroups, as the kubelet lists them.
func supplementalGroups(psc *v1.PodSecurityContext) []int64 {
	if psc == nil {
		return nil
	}
	var groups []int64
	if psc.FSGroup != nil {
		groups = append(groups, *psc.FSGroup)
	}
	return append(groups, psc.SupplementalGroups...)
}

// supplementalGroupsPolicy is the pod's policy for CRI (Merge when unset:
// the image's /etc/group memberships are added to the groups).
func supplementalGroupsPolicy(psc *v1.PodSecurityContext) runtimeapi.SupplementalGroupsPolicy {
	if psc != nil && psc.SupplementalGroupsPolicy != nil && *psc.SupplementalGroupsPolicy == v1.SupplementalGroupsPolicyStrict {
		return runtimeapi.SupplementalGroupsPolicy_Strict
	}
	return runtimeapi.SupplementalGroupsPolicy_Merge
}

// containerSecurityContext builds the container's CRI security context as
// the kubelet's determineEffectiveSecurityContext: the merged security
// context, seccomp and AppArmor profiles, the image's user when none is
// given, the pod's namespaces and groups, no_new_privs and the /proc paths.
func containerSecurityContext(pod *v1.Pod, c *v1.Container, user ImageUser, sec Security) *runtimeapi.LinuxContainerSecurityContext {
	eff := EffectiveSecurityContext(pod, c)
	sc := &runtimeapi.LinuxContainerSecurityContext{
		RunAsUser:      int64Value(eff.RunAsUser),
		RunAsGroup:     int64Value(eff.RunAsGroup),
		SelinuxOptions: seLinux(eff.SELinuxOptions),
	}
	if caps := eff.Capabilities; caps != nil {
		sc.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{}, DropCapabilities: []string{}}
		for _, c := range caps.Add {
			sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(c))
		}
		for _, c := range caps.Drop {
			sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(c))
		}
	}
	if eff.Privileged != nil {
		sc.Privileged = *eff.Privileged
	}
	if eff.ReadOnlyRootFilesystem != nil {
		sc.ReadonlyRootfs = *eff.ReadOnlyRootFilesystem
	}
	sc.Seccomp = SeccompProfile(pod, c, sec)
	sc.Apparmor, sc.ApparmorProfile = appArmor(pod, c)
	if sc.RunAsUser == nil {
		sc.RunAsUser = int64Value(user.UID)
		sc.RunAsUsername = user.Name
	}
	sc.NamespaceOptions = namespaceOptions(pod)
	sc.SupplementalGroups = supplementalGroups(pod.Spec.SecurityContext)
	sc.SupplementalGroupsPolicy = supplementalGroupsPolicy(pod.Spec.SecurityContext)
	if eff.AllowPrivilegeEscalation != nil {
		sc.NoNewPrivs = !*eff.AllowPrivilegeEscalation
	}
	sc.MaskedPaths, sc.ReadonlyPaths = procPaths(eff, sec)
	return sc
}

// sandboxSecurityContext is the sandbox's CRI security context, as the
// kubelet's generatePodSandboxLinuxConfig: the pause process always runs
// with the runtime's default seccomp profile (so a pod-level profile can
// be as strict as the app needs), the pod's user, groups and SELinux
// options.
func sandboxSecurityContext(pod *v1.Pod) *runtimeapi.LinuxSandboxSecurityContext {
	sc := &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: namespaceOptions(pod),
		Privileged:       podHasPrivileged(pod),
		Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		sc.RunAsUser = int64Value(psc.RunAsUser)
		sc.RunAsGroup = int64Value(psc.RunAsGroup)
		sc.SupplementalGroups = supplementalGroups(psc)
		sc.SupplementalGroupsPolicy = supplementalGroupsPolicy(psc)
		sc.SelinuxOptions = seLinux(psc.SELinuxOptions)
	}
	return sc
}

// PodDesc names a pod as the kubelet's messages do: name_namespace(uid).
func PodDesc(pod *v1.Pod) string { return podDesc(pod) }
