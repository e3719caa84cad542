package staticpod

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/podsource"
)

const basic = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: example/app:1.0
  - name: side
    image: example/side
`

func TestDecodeNamingAndDefaults(t *testing.T) {
	pod, err := Decode("/etc/manifests/web.yaml", []byte(basic), "node1")
	if err != nil {
		t.Fatal(err)
	}
	if pod.Name != "web-node1" || pod.Namespace != "default" || pod.Spec.NodeName != "node1" {
		t.Fatalf("naming: name=%q ns=%q node=%q", pod.Name, pod.Namespace, pod.Spec.NodeName)
	}
	if pod.Spec.RestartPolicy != v1.RestartPolicyAlways || *pod.Spec.TerminationGracePeriodSeconds != 30 {
		t.Fatalf("spec defaults not applied: %+v", pod.Spec)
	}
	if got := pod.Spec.Containers[0].ImagePullPolicy; got != v1.PullIfNotPresent {
		t.Fatalf("tagged image pull policy = %s", got)
	}
	if got := pod.Spec.Containers[1].ImagePullPolicy; got != v1.PullAlways {
		t.Fatalf("untagged image pull policy = %s", got)
	}
	if pod.Annotations[podsource.SourceAnnotation] != "file" || pod.Annotations[podsource.HashAnnotation] == "" {
		t.Fatalf("config annotations missing: %v", pod.Annotations)
	}
}

func TestDecodeUID(t *testing.T) {
	uid := func(path, node, content string) string {
		t.Helper()
		pod, err := Decode(path, []byte(content), node)
		if err != nil {
			t.Fatal(err)
		}
		return string(pod.UID)
	}
	base := uid("/m/web.yaml", "n1", basic)
	if len(base) != 36 || strings.Count(base, "-") != 4 {
		t.Fatalf("uid %q is not UUID-shaped", base)
	}
	if again := uid("/m/web.yaml", "n1", basic); again != base {
		t.Fatalf("uid not deterministic: %s vs %s", base, again)
	}
	for name, other := range map[string]string{
		"content": uid("/m/web.yaml", "n1", strings.Replace(basic, "app:1.0", "app:1.1", 1)),
		"path":    uid("/m/web2.yaml", "n1", basic),
		"node":    uid("/m/web.yaml", "n2", basic),
	} {
		if other == base {
			t.Errorf("a different %s gave the same uid", name)
		}
	}
	explicit := strings.Replace(basic, "  name: web\n", "  name: web\n  uid: 11111111-2222-3333-4444-555555555555\n", 1)
	if got := uid("/m/web.yaml", "n1", explicit); got != "11111111-2222-3333-4444-555555555555" {
		t.Fatalf("an explicit uid must be kept, got %s", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"empty", "  \n", "empty"},
		{"not yaml", "{{{", "decode"},
		{"unknown field", strings.Replace(basic, "image: example/app:1.0", "imagee: example/app:1.0", 1), `unknown field "spec.containers[0].imagee"`},
		{"wrong kind", strings.Replace(basic, "kind: Pod", "kind: Deployment", 1), "want apiVersion v1 and kind Pod"},
		{"no name", strings.Replace(basic, "  name: web\n", "", 1), "metadata.name is required"},
		{"bad name", strings.Replace(basic, "name: web", "name: Web_1", 1), "metadata.name"},
		{"uid that climbs out", strings.Replace(basic, "  name: web\n", "  name: web\n  uid: ../../../etc\n", 1), "metadata.uid: Invalid value"},
		{"uid with a slash", strings.Replace(basic, "  name: web\n", "  name: web\n  uid: a/b\n", 1), "metadata.uid: Invalid value"},
		{"namespace that climbs out", strings.Replace(basic, "  name: web\n", "  name: web\n  namespace: ../x\n", 1), "metadata.namespace"},
		{"no containers", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: []}\n", "spec.containers"},
		{"no image", strings.Replace(basic, "    image: example/app:1.0\n", "", 1), "spec.containers[0].image"},
		{"duplicate container", strings.Replace(basic, "name: side", "name: app", 1), "Duplicate value"},
		{"bad restart policy", strings.Replace(basic, "spec:\n", "spec:\n  restartPolicy: Sometimes\n", 1), "spec.restartPolicy"},
		{"mount of unknown volume", strings.Replace(basic, "    image: example/app:1.0\n", "    image: example/app:1.0\n    volumeMounts: [{name: data, mountPath: /data}]\n", 1), "volumeMounts[0].name"},
		{"configmap env", strings.Replace(basic, "    image: example/app:1.0\n", "    image: example/app:1.0\n    env: [{name: X, valueFrom: {configMapKeyRef: {name: c, key: k}}}]\n", 1), "cannot reference ConfigMaps"},
		{"configMap volume", strings.Replace(basic, "spec:\n", "spec:\n  volumes: [{name: c, configMap: {name: c}}]\n", 1), "only hostPath, emptyDir and downwardAPI volumes"},
		{"relative hostPath", strings.Replace(basic, "spec:\n", "spec:\n  volumes: [{name: h, hostPath: {path: rel}}]\n", 1), "absolute path"},
		{"probe with two handlers", strings.Replace(basic, "    image: example/app:1.0\n", "    image: example/app:1.0\n    livenessProbe: {exec: {command: [\"true\"]}, tcpSocket: {port: 80}}\n", 1), "spec.containers[0].livenessProbe: Required value: must have exactly one handler"},
		{"probe with no handler", strings.Replace(basic, "    image: example/app:1.0\n", "    image: example/app:1.0\n    readinessProbe: {periodSeconds: 5}\n", 1), "readinessProbe: Required value"},
		{"liveness success threshold", strings.Replace(basic, "    image: example/app:1.0\n", "    image: example/app:1.0\n    livenessProbe: {exec: {command: [\"true\"]}, successThreshold: 2}\n", 1), "livenessProbe.successThreshold: Invalid value: 2: must be 1"},
		{"user namespace with host network", strings.Replace(basic, "spec:\n", "spec:\n  hostUsers: false\n  hostNetwork: true\n", 1), "spec.hostNetwork: Forbidden: when `hostUsers` is false"},
		{"user namespace with host PID", strings.Replace(basic, "spec:\n", "spec:\n  hostUsers: false\n  hostPID: true\n", 1), "spec.HostPID: Forbidden: when `hostUsers` is false"},
		{"user namespace with host IPC", strings.Replace(basic, "spec:\n", "spec:\n  hostUsers: false\n  hostIPC: true\n", 1), "spec.HostIPC: Forbidden: when `hostUsers` is false"},
		{"Unmasked without a user namespace", strings.Replace(basic, "    image: example/app:1.0\n", "    image: example/app:1.0\n    securityContext: {procMount: Unmasked}\n", 1), "spec.containers[0].securityContext.procMount: Invalid value: \"Unmasked\": `hostUsers` must be false to use `Unmasked`"},
		{"hook with no action", strings.Replace(basic, "    image: example/app:1.0\n", "    image: example/app:1.0\n    lifecycle: {preStop: {}}\n", 1), "spec.containers[0].lifecycle.preStop: Required value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("/m/bad.yaml", []byte(tt.content), "n1")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDecodeAcceptsUnmaskedInAUserNamespace(t *testing.T) {
	m := strings.Replace(basic, "spec:\n", "spec:\n  hostUsers: false\n", 1)
	m = strings.Replace(m, "    image: example/app:1.0\n", "    image: example/app:1.0\n    securityContext: {procMount: Unmasked}\n", 1)
	if _, err := Decode("/m/userns.yaml", []byte(m), "n1"); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeAcceptsDownwardAPIVolumes(t *testing.T) {
	content := strings.Replace(basic, "spec:\n", "spec:\n  volumes: [{name: info, downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}]\n", 1)
	pod, err := Decode("/m/web.yaml", []byte(content), "n1")
	if err != nil || pod.Spec.Volumes[0].DownwardAPI == nil {
		t.Fatalf("a downwardAPI volume was refused: %v", err)
	}
}

func TestDecodeJSON(t *testing.T) {
	pod, err := Decode("/m/x.json", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","namespace":"ns"},"spec":{"containers":[{"name":"c","image":"i:1"}]}}`), "n")
	if err != nil {
		t.Fatal(err)
	}
	if pod.Name != "j-n" || pod.Namespace != "ns" {
		t.Fatalf("got %s/%s", pod.Namespace, pod.Name)
	}
}

func TestScanSkipsBadAndDuplicateFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a-good.yaml", basic)
	write("b-dup.yaml", strings.Replace(basic, "app:1.0", "app:2.0", 1))
	write("c-bad.yaml", "apiVersion: v1\nkind: Pod\n")
	write(".hidden.yaml", "garbage")
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := NewSource(dir, "n1", 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	snap := src.Scan()
	if len(snap.Pods) != 1 || snap.Pods[0].Spec.Containers[0].Image != "example/app:1.0" {
		t.Fatalf("want only the first file's pod, got %d pods", len(snap.Pods))
	}
	if len(snap.Errors) != 2 {
		t.Fatalf("want 2 file errors, got %v", snap.Errors)
	}
	if !strings.Contains(snap.Errors[0].Error(), "b-dup.yaml") || !strings.Contains(snap.Errors[0].Error(), "already declared by") {
		t.Errorf("duplicate not reported by name: %v", snap.Errors[0])
	}
	if !strings.Contains(snap.Errors[1].Error(), "c-bad.yaml") {
		t.Errorf("bad file not reported by name: %v", snap.Errors[1])
	}
}

func TestDefaultPullPolicy(t *testing.T) {
	tests := map[string]v1.PullPolicy{
		"busybox":                 v1.PullAlways,
		"busybox:latest":          v1.PullAlways,
		"busybox:1.36":            v1.PullIfNotPresent,
		"registry:5000/busybox":   v1.PullAlways,
		"registry:5000/busybox:1": v1.PullIfNotPresent,
		"busybox@sha256:" + strings.Repeat("a", 64): v1.PullIfNotPresent,
	}
	for image, want := range tests {
		if got := DefaultPullPolicy(image); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
}
