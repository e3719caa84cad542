package podsource

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(annotations map[string]string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}}
}

func TestIsStaticAndIsMirror(t *testing.T) {
	for _, tt := range []struct {
		name           string
		annotations    map[string]string
		static, mirror bool
	}{
		{"no annotations", nil, false, false},
		{"file source", map[string]string{SourceAnnotation: File}, true, false},
		{"api source", map[string]string{SourceAnnotation: API}, false, false},
		{"another non-API source is static, as in the kubelet", map[string]string{SourceAnnotation: "http"}, true, false},
		{"empty source", map[string]string{SourceAnnotation: ""}, false, false},
		{"mirror of a static pod", map[string]string{SourceAnnotation: API, MirrorAnnotation: "abc"}, false, true},
		{"mirror with an empty hash", map[string]string{MirrorAnnotation: ""}, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := pod(tt.annotations)
			if got := IsStatic(p); got != tt.static {
				t.Errorf("IsStatic = %v, want %v", got, tt.static)
			}
			if got := IsMirror(p); got != tt.mirror {
				t.Errorf("IsMirror = %v, want %v", got, tt.mirror)
			}
		})
	}
}

func TestStaticName(t *testing.T) {
	if got := StaticName("web", "node-1"); got != "web-node-1" {
		t.Errorf("StaticName = %q, want web-node-1", got)
	}
}

func TestStampOverridesWhatThePodSays(t *testing.T) {
	forged := pod(map[string]string{SourceAnnotation: File})
	bare := pod(nil)
	Stamp(API, []*v1.Pod{forged, bare})
	for _, p := range []*v1.Pod{forged, bare} {
		if p.Annotations[SourceAnnotation] != API || IsStatic(p) {
			t.Errorf("after Stamp(api): annotations %v, IsStatic %v", p.Annotations, IsStatic(p))
		}
	}
}

// An API object's author may write knode.io/config.file too; only the file
// source's pods keep it (StopPod moves the file it names).
func TestStampKeepsTheManifestPathOnlyForFilePods(t *testing.T) {
	api := pod(map[string]string{FileAnnotation: "/etc/kubernetes/manifests/kube-apiserver.yaml"})
	static := pod(map[string]string{FileAnnotation: "/etc/knode/manifests/web.yaml"})
	Stamp(API, []*v1.Pod{api})
	Stamp(File, []*v1.Pod{static})
	if f, ok := api.Annotations[FileAnnotation]; ok {
		t.Errorf("the API pod keeps the manifest path it claimed: %q", f)
	}
	if static.Annotations[FileAnnotation] != "/etc/knode/manifests/web.yaml" {
		t.Errorf("the static pod lost its manifest path: %v", static.Annotations)
	}
}

func TestRunningContainers(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	pod := &v1.Pod{Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Name: "init"}, {Name: "sidecar", RestartPolicy: &always}},
		Containers:     []v1.Container{{Name: "a"}, {Name: "b"}},
	}}
	var names []string
	for _, c := range RunningContainers(pod) {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "sidecar,a,b" {
		t.Fatalf("running containers %v, want sidecar,a,b", names)
	}
}
