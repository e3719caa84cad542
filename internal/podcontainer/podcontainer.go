// Package podcontainer is the one rule for which container of a pod a
// request names (logs, exec, attach, checkpoint): any app, init (sidecars
// included) or ephemeral container the pod's spec declares, with its status
// and the runtime ID of its running instance.
package podcontainer

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/apierr"
)

// ErrNotFound means the pod, or the container in it, does not exist; its
// kind makes the server answer 404 with the wrapping message.
var ErrNotFound = apierr.New(apierr.NotFound, "not found")

// Pods finds a managed pod with its live status; pods.Manager implements it.
type Pods interface {
	GetPod(namespace, name string) (*v1.Pod, bool)
}

// Ref is what a lookup found.
type Ref struct {
	// Pod is the pod with its live status; nil when the pod does not exist.
	Pod *v1.Pod
	// Status is the container's status; only its Name when it has none yet.
	Status v1.ContainerStatus
	// ID is the runtime's ID of the running instance (without the
	// "<runtime>://" prefix); "" when none runs.
	ID string
}

// ContainerID looks container up in pod namespace/name. A missing pod or a
// container the spec does not declare is ErrNotFound; ref.Pod tells which.
func ContainerID(pods Pods, namespace, name, container string) (Ref, error) {
	pod, ok := pods.GetPod(namespace, name)
	if !ok {
		return Ref{}, fmt.Errorf("pod %s/%s: %w", namespace, name, ErrNotFound)
	}
	ref, ok := Find(pod, container)
	if !ok {
		return ref, fmt.Errorf("container %s in pod %s/%s: %w", container, namespace, name, ErrNotFound)
	}
	return ref, nil
}

// Find applies the rule to a pod at hand.
func Find(pod *v1.Pod, container string) (Ref, bool) {
	ref := Ref{Pod: pod}
	if !declared(pod, container) {
		return ref, false
	}
	ref.Status = v1.ContainerStatus{Name: container}
	for _, list := range [][]v1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for _, cs := range list {
			if cs.Name == container {
				ref.Status = cs
			}
		}
	}
	if ref.Status.State.Running != nil {
		ref.ID = RuntimeID(ref.Status.ContainerID)
	}
	return ref, true
}

func declared(pod *v1.Pod, name string) bool {
	for _, list := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range list {
			if c.Name == name {
				return true
			}
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// RuntimeID strips the "<runtime>://" prefix of a status's container ID.
func RuntimeID(containerID string) string {
	if _, id, ok := strings.Cut(containerID, "://"); ok {
		return id
	}
	return containerID
}
