package crispec

// Labels and annotations the kubelet puts on sandboxes and containers; knode
// writes the same ones so tools written for the kubelet (crictl, log agents)
// understand knode's pods.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
	// LabelManagedBy marks what knode created, so it never removes sandboxes
	// another agent (a kubelet) owns on a shared runtime; LabelNode names
	// the knode, so several knodes can share one runtime.
	LabelManagedBy = "knode.io/managed-by"
	ManagedByValue = "knode"
	LabelNode      = "knode.io/node"

	AnnotationContainerHash          = "io.kubernetes.container.hash"
	AnnotationRestartCount           = "io.kubernetes.container.restartCount"
	AnnotationTerminationMessagePath = "io.kubernetes.container.terminationMessagePath"
	AnnotationTerminationMsgPolicy   = "io.kubernetes.container.terminationMessagePolicy"
	AnnotationPodTerminationGrace    = "io.kubernetes.pod.terminationGracePeriod"
	AnnotationContainerPorts         = "io.kubernetes.container.ports"
	// AnnotationInit marks init containers (the kubelet keeps this in its own state).
	AnnotationInit = "knode.io/init-container"
)

// OwnerSelector selects the sandboxes and containers the knode named node
// made, for anyone else who reads the runtime on its behalf.
func OwnerSelector(node string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedByValue, LabelNode: node}
}
