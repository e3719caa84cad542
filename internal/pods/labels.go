package pods

// Labels and annotations the kubelet puts on sandboxes and containers; knode
// writes the same ones so tools written for the kubelet (crictl, log agents)
// understand knode's pods.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	// labelManagedBy marks what knode created, so it never removes sandboxes
	// another agent (a kubelet) owns on a shared runtime; labelNode names
	// the knode, so several knodes can share one runtime.
	labelManagedBy = "knode.io/managed-by"
	managedByValue = "knode"
	labelNode      = "knode.io/node"

	annotationContainerHash          = "io.kubernetes.container.hash"
	annotationRestartCount           = "io.kubernetes.container.restartCount"
	annotationTerminationMessagePath = "io.kubernetes.container.terminationMessagePath"
	annotationTerminationMsgPolicy   = "io.kubernetes.container.terminationMessagePolicy"
	annotationPodTerminationGrace    = "io.kubernetes.pod.terminationGracePeriod"
	annotationContainerPorts         = "io.kubernetes.container.ports"
	// restoredFromAnnotation names the archive (and digest) a pod's
	// container was restored from; knode adds it to the pod it serves.
	restoredFromAnnotation = "checkpoint.knode.io/restored-from"
	// annotationInit marks init containers (the kubelet keeps this in its own state).
	annotationInit = "knode.io/init-container"
)

// OwnerSelector selects the sandboxes and containers the knode named node
// made, for anyone else who reads the runtime on its behalf.
func OwnerSelector(node string) map[string]string {
	return map[string]string{labelManagedBy: managedByValue, labelNode: node}
}
