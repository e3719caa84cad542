package pods

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

// An API pod's author sets its annotations: claiming to come from a
// manifest file must not make it a static pod (exempt from eviction,
// restorable without the ContainerCheckpoint gate) nor name a manifest
// that POST /pods/{ns}/{name}/stop would move aside.
func TestAPIPodCannotClaimToBeStatic(t *testing.T) {
	f := newFixture(t)
	forged := testPod(v1.RestartPolicyAlways)
	forged.Annotations[configSourceAnnotation] = "file"
	forged.Annotations["knode.io/config.file"] = "/etc/kubernetes/manifests/kube-apiserver.yaml"
	static := testPod(v1.RestartPolicyAlways)
	static.Name, static.UID = "static-n1", "uid-static"
	static.Annotations = map[string]string{configSourceAnnotation: "file", "knode.io/config.file": "/etc/knode/manifests/static.yaml"}
	f.m.SetPods("api", []*v1.Pod{forged})
	f.m.SetPods("file", []*v1.Pod{static})

	got, ok := f.m.GetPod("default", "web-n1")
	if !ok {
		t.Fatal("the API pod is not managed")
	}
	if IsStatic(got) || got.Annotations[configSourceAnnotation] != "api" {
		t.Errorf("the API pod passes for a static pod: config.source %q", got.Annotations[configSourceAnnotation])
	}
	if file, ok := got.Annotations["knode.io/config.file"]; ok {
		t.Errorf("the API pod keeps the manifest path it claimed: %q", file)
	}
	st, ok := f.m.GetPod("default", "static-n1")
	if !ok || !IsStatic(st) || st.Annotations["knode.io/config.file"] != "/etc/knode/manifests/static.yaml" {
		t.Errorf("the static pod lost its source: %v", st.Annotations)
	}
}
