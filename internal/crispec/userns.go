package crispec

import runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

// SandboxUserNamespace puts the pod's user namespace (nil: the host's)
// into its sandbox config, as the kubelet's NamespacesForPod does.
func SandboxUserNamespace(cfg *runtimeapi.PodSandboxConfig, userns *runtimeapi.UserNamespace) {
	if userns == nil || cfg.GetLinux().GetSecurityContext().GetNamespaceOptions() == nil {
		return
	}
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns
}

// ContainerUserNamespace gives a container its sandbox's user namespace
// (the runtime refuses a container whose differs) and, as the kubelet
// does, the namespace's ID mappings on every mount: the runtime then
// mounts each volume idmapped, so the IDs on disk are the IDs the pod
// sees (a volume knode made as root is the pod root's, an fsGroup stays
// that group), whatever host range the pod runs as.
func ContainerUserNamespace(cfg *runtimeapi.ContainerConfig, sandbox *runtimeapi.PodSandboxConfig) {
	userns := sandbox.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if userns == nil || ns == nil {
		return
	}
	ns.UsernsOptions = userns
	for _, m := range cfg.Mounts {
		m.UidMappings = userns.Uids
		m.GidMappings = userns.Gids
	}
}
