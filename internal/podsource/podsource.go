// Package podsource is the one vocabulary of where pods come from: the
// kubelet's config annotations, the source names, which pods are static or
// mirrors, the static pod naming rule, and the Sink every source pushes its
// pods into. Sources (internal/staticpod, internal/cluster), the pod manager
// and the checkpoint code all ask here, so the rules cannot drift apart.
package podsource

import v1 "k8s.io/api/core/v1"

// Annotations the kubelet puts on pods from its config sources; knode
// writes and reads the same keys so tools written for the kubelet agree.
const (
	// SourceAnnotation names the source that declared the pod ("file",
	// "api"); the sink sets it, so a pod cannot claim another source.
	SourceAnnotation = "kubernetes.io/config.source"
	// HashAnnotation identifies a static pod's manifest content; a sandbox
	// records it, and a different hash means the pod was replaced.
	HashAnnotation = "kubernetes.io/config.hash"
	// MirrorAnnotation marks the API object that stands for a static pod;
	// its value is the static pod's hash.
	MirrorAnnotation = "kubernetes.io/config.mirror"
	// FileAnnotation is knode's own: the manifest a static pod came from,
	// so it can be stopped by moving that file aside.
	FileAnnotation = "knode.io/config.file"
)

// Source names, the values of SourceAnnotation.
const (
	// File is the manifest directory (--pod-manifest-path): static pods.
	File = "file"
	// API is the API server (cluster mode).
	API = "api"
)

// Sink receives the complete set of pods one source declares, each time it
// changes; the first call marks the source as having reported.
// pods.Manager implements it.
type Sink interface {
	SetPods(source string, pods []*v1.Pod)
}

// IsStatic tells a pod that no API server declared (a static pod), by the
// kubelet's rule: a source is recorded and it is not the API server. The
// kubelet counts such pods critical: never refused or evicted for pressure.
func IsStatic(pod *v1.Pod) bool {
	src, ok := pod.Annotations[SourceAnnotation]
	return ok && src != "" && src != API
}

// IsMirror tells the API object that stands for a static pod.
func IsMirror(pod *v1.Pod) bool {
	_, ok := pod.Annotations[MirrorAnnotation]
	return ok
}

// StaticName is a static pod's name on node: the manifest's name with the
// suffix -<node>, as the kubelet names it.
func StaticName(name, node string) string { return name + "-" + node }

// Stamp records source on each pod, as the kubelet's config merge does:
// what a source says about itself (or what an API object's author wrote
// into the annotation) never decides whether a pod is static. Only the
// file source names a manifest: FileAnnotation is dropped from every other
// source's pods, or an API object that named a static pod's manifest there
// would have POST /pods/{ns}/{name}/stop move that manifest aside.
func Stamp(source string, pods []*v1.Pod) {
	for _, p := range pods {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[SourceAnnotation] = source
		if source != File {
			delete(p.Annotations, FileAnnotation)
		}
	}
}

// kubeletConditions are the pod conditions the node agent owns.
var kubeletConditions = map[v1.PodConditionType]bool{
	v1.PodScheduled: true, v1.PodReady: true, v1.PodInitialized: true, v1.ContainersReady: true,
	v1.PodReadyToStartContainers: true, v1.PodResizePending: true, v1.PodResizeInProgress: true,
}

// IsKubeletCondition tells a pod condition the node agent writes from one
// others write on the API object (a readiness gate's, DisruptionTarget),
// which the agent keeps as the object has it, as the kubelet's status
// manager does.
func IsKubeletCondition(t v1.PodConditionType) bool { return kubeletConditions[t] }

// IsNodeSharedCondition tells a condition of a type others write too that
// the node agent wrote itself, and that replaces theirs (the kubelet's
// PodConditionSharedByKubelet): DisruptionTarget with reason
// TerminationByKubelet, when it stops a pod. One of another reason is the
// API object's, copied.
func IsNodeSharedCondition(c v1.PodCondition) bool {
	return c.Type == v1.DisruptionTarget && c.Reason == v1.PodReasonTerminationByKubelet
}

// IsSidecar reports whether an init container is a sidecar: one with
// restartPolicy Always, which runs beside the regular containers.
func IsSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// RunningContainers are the containers that run for the pod's lifetime:
// its sidecars, then its regular containers. The kubelet's admission
// (host ports) and eviction (ephemeral-storage limits) look at these.
func RunningContainers(pod *v1.Pod) []*v1.Container {
	var out []*v1.Container
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; IsSidecar(c) {
			out = append(out, c)
		}
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}
