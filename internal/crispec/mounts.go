package crispec

import (
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/subpath"
)

// Mount is the CRI mount of one volumeMount whose volume is at hostPath
// (or, for a subPath, the bind knode made of it). API-object volumes are
// read-only whatever the volumeMount says; what knode cannot honour
// (bindMountOptions) is refused.
func Mount(vm *v1.VolumeMount, vol *v1.Volume, hostPath string) (*runtimeapi.Mount, error) {
	mount := &runtimeapi.Mount{
		ContainerPath: vm.MountPath,
		HostPath:      hostPath,
		Readonly:      vm.ReadOnly || IsAPIVolume(vol),
	}
	if err := recursiveReadOnly(vm, mount); err != nil {
		return nil, err
	}
	if len(vm.BindMountOptions) > 0 {
		return nil, fmt.Errorf("volumeMount %q: bindMountOptions are not supported by knode", vm.Name)
	}
	if vm.MountPropagation != nil {
		switch *vm.MountPropagation {
		case v1.MountPropagationHostToContainer:
			mount.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		case v1.MountPropagationBidirectional:
			mount.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
		}
	}
	return mount, nil
}

// recursiveReadOnly applies the volumeMount's recursiveReadOnly: Enabled
// asks the runtime for a recursively read-only mount (a runtime without it
// fails the creation, a clear refusal); IfPossible is read-only without
// recursion, since knode does not ask the runtime what it supports, which
// the field allows. Both need readOnly and no propagation, as the API
// server's validation requires.
func recursiveReadOnly(vm *v1.VolumeMount, mount *runtimeapi.Mount) error {
	if vm.RecursiveReadOnly == nil || *vm.RecursiveReadOnly == v1.RecursiveReadOnlyDisabled {
		return nil
	}
	switch *vm.RecursiveReadOnly {
	case v1.RecursiveReadOnlyEnabled, v1.RecursiveReadOnlyIfPossible:
	default:
		return fmt.Errorf("volumeMount %q: unknown recursiveReadOnly %q", vm.Name, *vm.RecursiveReadOnly)
	}
	if !vm.ReadOnly {
		return fmt.Errorf("volumeMount %q: recursiveReadOnly %s needs readOnly: true", vm.Name, *vm.RecursiveReadOnly)
	}
	if vm.MountPropagation != nil && *vm.MountPropagation != v1.MountPropagationNone {
		return fmt.Errorf("volumeMount %q: recursiveReadOnly %s needs mountPropagation None", vm.Name, *vm.RecursiveReadOnly)
	}
	mount.RecursiveReadOnly = *vm.RecursiveReadOnly == v1.RecursiveReadOnlyEnabled
	return nil
}

// SubPath is the volume mount's subPath, subPathExpr expanded with the
// container's environment, checked as the kubelet checks it; "" for none.
func SubPath(vm *v1.VolumeMount, envs []*runtimeapi.KeyValue) (string, error) {
	p := vm.SubPath
	if vm.SubPathExpr != "" {
		if vm.SubPath != "" {
			return "", fmt.Errorf("volumeMount %q: subPathExpr and subPath are mutually exclusive", vm.Name)
		}
		var err error
		if p, err = expandSubPathExpr(vm.SubPathExpr, envs); err != nil {
			return "", err
		}
	}
	if p == "" {
		return "", nil
	}
	if err := subpath.Validate(p); err != nil {
		return "", err
	}
	return p, nil
}

// expandSubPathExpr expands $(VAR) references from the container's env, as
// the kubelet's ExpandContainerVolumeMounts: only the env (no other
// source), $$ escapes a dollar, and a reference to a variable that is not
// set or is empty fails the container naming every such variable.
func expandSubPathExpr(expr string, envs []*runtimeapi.KeyValue) (string, error) {
	values := EnvLookup(envs)
	var missing []string
	out := Expand(expr, func(name string) (string, bool) {
		v, ok := values(name)
		if !ok || v == "" {
			if !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		}
		return v, true
	})
	if len(missing) > 0 {
		slices.Sort(missing)
		return "", fmt.Errorf("missing value for %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// IsAPIVolume reports the volume kinds whose content knode writes from API
// objects: containers get them read-only whatever the volumeMount says
// (CVE-2017-1002102: a writable one lets a container plant what knode's
// next refresh would follow).
func IsAPIVolume(vol *v1.Volume) bool {
	return vol.ConfigMap != nil || vol.Secret != nil || vol.Projected != nil || vol.DownwardAPI != nil
}
