package podcontainer

import (
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type onePod struct{ pod *v1.Pod }

func (o onePod) GetPod(ns, name string) (*v1.Pod, bool) {
	if ns == o.pod.Namespace && name == o.pod.Name {
		return o.pod, true
	}
	return nil, false
}

func running(name, id string) v1.ContainerStatus {
	return v1.ContainerStatus{Name: name, ContainerID: id, State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}
}

func TestContainerID(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: v1.PodSpec{
			Containers:          []v1.Container{{Name: "app"}, {Name: "waiting"}},
			InitContainers:      []v1.Container{{Name: "init"}, {Name: "sidecar", RestartPolicy: &always}},
			EphemeralContainers: []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debug"}}},
		},
		Status: v1.PodStatus{
			ContainerStatuses: []v1.ContainerStatus{running("app", "containerd://a1"),
				{Name: "waiting", State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}},
			InitContainerStatuses: []v1.ContainerStatus{
				{Name: "init", ContainerID: "containerd://i1", State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{}}},
				running("sidecar", "containerd://s1")},
			EphemeralContainerStatuses: []v1.ContainerStatus{running("debug", "containerd://d1")},
		},
	}
	pods := onePod{pod}
	for _, tt := range []struct {
		pod, container  string
		found, podFound bool
		id              string
		statusID        string
	}{
		{"web", "app", true, true, "a1", "containerd://a1"},
		{"web", "sidecar", true, true, "s1", "containerd://s1"},
		{"web", "debug", true, true, "d1", "containerd://d1"},
		{"web", "init", true, true, "", "containerd://i1"}, // exited: found, not running
		{"web", "waiting", true, true, "", ""},
		{"web", "nope", false, true, "", ""},
		{"other", "app", false, false, "", ""},
	} {
		ref, err := ContainerID(pods, "default", tt.pod, tt.container)
		if (err == nil) != tt.found || (err != nil && !errors.Is(err, ErrNotFound)) {
			t.Errorf("%s/%s: err %v, want found=%v", tt.pod, tt.container, err, tt.found)
		}
		if (ref.Pod != nil) != tt.podFound || ref.ID != tt.id || ref.Status.ContainerID != tt.statusID {
			t.Errorf("%s/%s: pod %v, id %q, status id %q; want pod %v, id %q, status id %q",
				tt.pod, tt.container, ref.Pod != nil, ref.ID, ref.Status.ContainerID, tt.podFound, tt.id, tt.statusID)
		}
	}
}

// A declared container without a status yet is found, with its name only.
func TestDeclaredWithoutStatus(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app"}}}}
	ref, ok := Find(pod, "app")
	if !ok || ref.Status.Name != "app" || ref.ID != "" {
		t.Errorf("got %+v, %v", ref, ok)
	}
}
