package crispec

import runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

// ShareTargetPID puts an ephemeral container into its target container's
// process namespace (CRI NamespaceMode TARGET), as the kubelet does for
// `targetContainerName`: only when the container would otherwise get its
// own PID namespace; a pod that shares one (shareProcessNamespace, hostPID)
// already lets the debug container see every process it may see.
func ShareTargetPID(cfg *runtimeapi.ContainerConfig, targetID string) {
	if cfg.Linux == nil || cfg.Linux.SecurityContext == nil || cfg.Linux.SecurityContext.NamespaceOptions == nil {
		return
	}
	ns := cfg.Linux.SecurityContext.NamespaceOptions
	if ns.Pid == runtimeapi.NamespaceMode_CONTAINER {
		ns.Pid = runtimeapi.NamespaceMode_TARGET
		ns.TargetId = targetID
	}
}
