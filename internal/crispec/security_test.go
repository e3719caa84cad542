package crispec

import (
	"reflect"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func ptr[T any](v T) *T { return &v }

var secNode = Security{SeccompProfileRoot: "/var/lib/kubelet/seccomp", HostMaskedPaths: []string{"/sys/devices/system/cpu/cpu0/thermal_throttle"}}

func TestContainerSecurityContext(t *testing.T) {
	root := int64(0)
	for _, tt := range []struct {
		name  string
		sec   Security
		user  ImageUser
		edit  func(*v1.Pod)
		check func(*testing.T, *runtimeapi.LinuxContainerSecurityContext)
	}{
		{"no profile: Unconfined", secNode, ImageUser{UID: &root}, func(*v1.Pod) {}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			if sc.Seccomp.ProfileType != runtimeapi.SecurityProfile_Unconfined || sc.Apparmor != nil || sc.ApparmorProfile != "" {
				t.Errorf("seccomp %v apparmor %v %q", sc.Seccomp, sc.Apparmor, sc.ApparmorProfile)
			}
		}},
		{"no profile with seccompDefault: RuntimeDefault", Security{SeccompDefault: true}, ImageUser{UID: &root}, func(*v1.Pod) {}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			if sc.Seccomp.ProfileType != runtimeapi.SecurityProfile_RuntimeDefault {
				t.Errorf("seccomp %v", sc.Seccomp)
			}
		}},
		{"pod Unconfined beats seccompDefault", Security{SeccompDefault: true}, ImageUser{}, func(p *v1.Pod) {
			p.Spec.SecurityContext = &v1.PodSecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeUnconfined}}
		}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			if sc.Seccomp.ProfileType != runtimeapi.SecurityProfile_Unconfined {
				t.Errorf("seccomp %v", sc.Seccomp)
			}
		}},
		{"container Localhost beats pod RuntimeDefault", secNode, ImageUser{}, func(p *v1.Pod) {
			p.Spec.SecurityContext = &v1.PodSecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}}
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr("team/audit.json")}}
		}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			want := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/var/lib/kubelet/seccomp/team/audit.json"}
			if !reflect.DeepEqual(sc.Seccomp, want) {
				t.Errorf("seccomp %v, want %v", sc.Seccomp, want)
			}
		}},
		{"Default procMount: the kubelet's masked and read-only paths, the host's too", secNode, ImageUser{}, func(*v1.Pod) {}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/sys/devices/system/cpu/cpu0/thermal_throttle"} {
				if !slices.Contains(sc.MaskedPaths, p) {
					t.Errorf("masked %v lacks %s", sc.MaskedPaths, p)
				}
			}
			if !reflect.DeepEqual(sc.ReadonlyPaths, []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}) {
				t.Errorf("read-only %v", sc.ReadonlyPaths)
			}
		}},
		{"Unmasked procMount: none", secNode, ImageUser{}, func(p *v1.Pod) {
			um := v1.UnmaskedProcMount
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{ProcMount: &um}
		}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			if sc.MaskedPaths == nil || len(sc.MaskedPaths) != 0 || len(sc.ReadonlyPaths) != 0 {
				t.Errorf("masked %v read-only %v", sc.MaskedPaths, sc.ReadonlyPaths)
			}
		}},
		{"privileged: no masked paths", secNode, ImageUser{}, func(p *v1.Pod) {
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{Privileged: ptr(true)}
		}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			if !sc.Privileged || len(sc.MaskedPaths) != 0 || len(sc.ReadonlyPaths) != 0 {
				t.Errorf("privileged %v masked %v read-only %v", sc.Privileged, sc.MaskedPaths, sc.ReadonlyPaths)
			}
		}},
		{"the image's user when the pod names none", secNode, ImageUser{Name: "nobody"}, func(*v1.Pod) {}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			if sc.RunAsUser != nil || sc.RunAsUsername != "nobody" {
				t.Errorf("user %v %q", sc.RunAsUser, sc.RunAsUsername)
			}
		}},
		{"the image's numeric user", secNode, ImageUser{UID: ptr(int64(65534))}, func(*v1.Pod) {}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			if sc.RunAsUser.GetValue() != 65534 || sc.RunAsUsername != "" {
				t.Errorf("user %v %q", sc.RunAsUser, sc.RunAsUsername)
			}
		}},
		{"pod user and group, container's user wins; groups with fsGroup first; Strict", secNode, ImageUser{Name: "nobody"}, func(p *v1.Pod) {
			strict := v1.SupplementalGroupsPolicyStrict
			p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(2000)), FSGroup: ptr(int64(3000)),
				SupplementalGroups: []int64{4000, 4001}, SupplementalGroupsPolicy: &strict}
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{RunAsUser: ptr(int64(1001))}
		}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			if sc.RunAsUser.GetValue() != 1001 || sc.RunAsUsername != "" || sc.RunAsGroup.GetValue() != 2000 {
				t.Errorf("user %v %q group %v", sc.RunAsUser, sc.RunAsUsername, sc.RunAsGroup)
			}
			if !reflect.DeepEqual(sc.SupplementalGroups, []int64{3000, 4000, 4001}) || sc.SupplementalGroupsPolicy != runtimeapi.SupplementalGroupsPolicy_Strict {
				t.Errorf("groups %v policy %v", sc.SupplementalGroups, sc.SupplementalGroupsPolicy)
			}
		}},
		{"capabilities, read-only root, no privilege escalation, SELinux from the pod", secNode, ImageUser{}, func(p *v1.Pod) {
			p.Spec.SecurityContext = &v1.PodSecurityContext{SELinuxOptions: &v1.SELinuxOptions{Type: "spc_t", Level: "s0:c1,c2"}}
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{ReadOnlyRootFilesystem: ptr(true), AllowPrivilegeEscalation: ptr(false),
				Capabilities: &v1.Capabilities{Add: []v1.Capability{"NET_ADMIN"}, Drop: []v1.Capability{"ALL"}}}
		}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			if !sc.ReadonlyRootfs || !sc.NoNewPrivs {
				t.Errorf("read-only %v no_new_privs %v", sc.ReadonlyRootfs, sc.NoNewPrivs)
			}
			if !reflect.DeepEqual(sc.Capabilities, &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"ALL"}}) {
				t.Errorf("capabilities %v", sc.Capabilities)
			}
			if !reflect.DeepEqual(sc.SelinuxOptions, &runtimeapi.SELinuxOption{Type: "spc_t", Level: "s0:c1,c2"}) {
				t.Errorf("selinux %v", sc.SelinuxOptions)
			}
			if sc.SupplementalGroupsPolicy != runtimeapi.SupplementalGroupsPolicy_Merge {
				t.Errorf("policy %v", sc.SupplementalGroupsPolicy)
			}
		}},
		{"allowPrivilegeEscalation true: no no_new_privs", secNode, ImageUser{}, func(p *v1.Pod) {
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{AllowPrivilegeEscalation: ptr(true)}
		}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			if sc.NoNewPrivs {
				t.Error("no_new_privs set")
			}
		}},
		{"container SELinux options win", secNode, ImageUser{}, func(p *v1.Pod) {
			p.Spec.SecurityContext = &v1.PodSecurityContext{SELinuxOptions: &v1.SELinuxOptions{Type: "a"}}
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{SELinuxOptions: &v1.SELinuxOptions{User: "u", Role: "r", Type: "b"}}
		}, func(t *testing.T, sc *runtimeapi.LinuxContainerSecurityContext) {
			if !reflect.DeepEqual(sc.SelinuxOptions, &runtimeapi.SELinuxOption{User: "u", Role: "r", Type: "b"}) {
				t.Errorf("selinux %v", sc.SelinuxOptions)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			tt.edit(pod)
			n := node
			n.Security = tt.sec
			cfg := Container(pod, &pod.Spec.Containers[0], ContainerInput{ImageUser: tt.user}, n)
			tt.check(t, cfg.Linux.SecurityContext)
		})
	}
}

func TestAppArmorProfile(t *testing.T) {
	for _, tt := range []struct {
		name       string
		edit       func(*v1.Pod)
		want       *runtimeapi.SecurityProfile
		deprecated string
	}{
		{"none", func(*v1.Pod) {}, nil, ""},
		{"pod RuntimeDefault", func(p *v1.Pod) {
			p.Spec.SecurityContext = &v1.PodSecurityContext{AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}}
		}, &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, "runtime/default"},
		{"annotation beats the pod's field", func(p *v1.Pod) {
			p.Spec.SecurityContext = &v1.PodSecurityContext{AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}}
			p.Annotations["container.apparmor.security.beta.kubernetes.io/app"] = "localhost/k8s-nginx"
		}, &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "k8s-nginx"}, "localhost/k8s-nginx"},
		{"annotation of another container: the pod's field", func(p *v1.Pod) {
			p.Annotations["container.apparmor.security.beta.kubernetes.io/other"] = "unconfined"
		}, nil, ""},
		{"container field beats the annotation", func(p *v1.Pod) {
			p.Annotations["container.apparmor.security.beta.kubernetes.io/app"] = "runtime/default"
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}}
		}, &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, "unconfined"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			tt.edit(pod)
			sc := Container(pod, &pod.Spec.Containers[0], ContainerInput{}, node).Linux.SecurityContext
			if !reflect.DeepEqual(sc.Apparmor, tt.want) || sc.ApparmorProfile != tt.deprecated {
				t.Errorf("apparmor %v %q, want %v %q", sc.Apparmor, sc.ApparmorProfile, tt.want, tt.deprecated)
			}
		})
	}
}

func TestSandboxSecurityContext(t *testing.T) {
	pod := basePod()
	cfg, err := Sandbox(pod, 0, node, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.Linux.SecurityContext
	if sc.Seccomp.GetProfileType() != runtimeapi.SecurityProfile_RuntimeDefault || sc.RunAsUser != nil || sc.SupplementalGroups != nil {
		t.Errorf("plain pod: %v", sc)
	}
	pod.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr(int64(7)), FSGroup: ptr(int64(9)), SupplementalGroups: []int64{10},
		SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeUnconfined}, SELinuxOptions: &v1.SELinuxOptions{Level: "s0"}}
	if cfg, err = Sandbox(pod, 0, node, nil); err != nil {
		t.Fatal(err)
	}
	sc = cfg.Linux.SecurityContext
	// The pause process keeps RuntimeDefault whatever the pod's profile.
	if sc.Seccomp.GetProfileType() != runtimeapi.SecurityProfile_RuntimeDefault || sc.RunAsUser.GetValue() != 7 ||
		!reflect.DeepEqual(sc.SupplementalGroups, []int64{9, 10}) || sc.SelinuxOptions.GetLevel() != "s0" {
		t.Errorf("sandbox security context %v", sc)
	}
}

func TestVerifyRunAsNonRoot(t *testing.T) {
	root, user := int64(0), int64(1000)
	nonRoot := func(p *v1.Pod) { p.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: ptr(true)} }
	for _, tt := range []struct {
		name string
		edit func(*v1.Pod)
		user ImageUser
		want string
	}{
		{"not asked", func(*v1.Pod) {}, ImageUser{UID: &root}, ""},
		{"image runs as root", nonRoot, ImageUser{UID: &root},
			`container has runAsNonRoot and image will run as root (pod: "web-n1_prod(uid-1)", container: app)`},
		{"image has a named user", nonRoot, ImageUser{Name: "www"},
			`container has runAsNonRoot and image has non-numeric user (www), cannot verify user is non-root (pod: "web-n1_prod(uid-1)", container: app)`},
		{"image has a non-root UID", nonRoot, ImageUser{UID: &user}, ""},
		{"runAsUser 0 breaks it", func(p *v1.Pod) {
			nonRoot(p)
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{RunAsUser: &root}
		}, ImageUser{UID: &user}, `container's runAsUser breaks non-root policy (pod: "web-n1_prod(uid-1)", container: app)`},
		{"runAsUser non-root settles it", func(p *v1.Pod) {
			nonRoot(p)
			p.Spec.SecurityContext.RunAsUser = &user
		}, ImageUser{Name: "www"}, ""},
		{"container false beats pod true", func(p *v1.Pod) {
			nonRoot(p)
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{RunAsNonRoot: ptr(false)}
		}, ImageUser{UID: &root}, ""},
		{"ImageUserOf an image without user is root", nonRoot, ImageUserOf(&runtimeapi.Image{}),
			`container has runAsNonRoot and image will run as root (pod: "web-n1_prod(uid-1)", container: app)`},
		{"ImageUserOf a numeric user", nonRoot, ImageUserOf(&runtimeapi.Image{Uid: &runtimeapi.Int64Value{Value: 5}, Username: ""}), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod()
			tt.edit(pod)
			err := CheckContainerSecurity(pod, &pod.Spec.Containers[0], tt.user)
			if got := errString(err); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLocalhostSeccompProfileChecked(t *testing.T) {
	for profile, want := range map[string]string{
		"":              "localhostProfile must be set if seccompProfile type is Localhost.",
		"../etc/shadow": `seccomp localhostProfile "../etc/shadow" must be a relative path beneath the seccomp profile root, without '..'`,
		"/etc/shadow":   `seccomp localhostProfile "/etc/shadow" must be a relative path beneath the seccomp profile root, without '..'`,
		"a/../../b":     `seccomp localhostProfile "a/../../b" must be a relative path beneath the seccomp profile root, without '..'`,
		"audit.json":    "",
	} {
		pod := basePod()
		pod.Spec.SecurityContext = &v1.PodSecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: &profile}}
		if got := errString(CheckContainerSecurity(pod, &pod.Spec.Containers[0], ImageUser{})); got != want {
			t.Errorf("%q: got %q, want %q", profile, got, want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
