package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestEnvSourcesFromTheAPIServer: a pod's envFrom (a ConfigMap and a
// Secret, each under a prefix, an optional missing one), configMapKeyRef
// and secretKeyRef reach the container's env as the kubelet builds it, env
// overriding envFrom and expanding its variables; a missing required key
// or object leaves the container waiting in CreateContainerConfigError
// with the kubelet's message in the API pod's status.
func TestEnvSourcesFromTheAPIServer(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	n := newNode(t)
	kc := cp.nodeKubeconfig(t, n)
	n.startKnode("--kubeconfig", kc, "--sync-frequency", "2s")
	ctx := context.Background()
	cp.defaultServiceAccount(t)
	if _, err := cp.core.ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data:       map[string]string{"MODE": "fast", "LEVEL": "3", "OVERRIDDEN": "from-cm"},
		BinaryData: map[string][]byte{"BLOB": []byte("binary")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.core.Secrets("default").Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"},
		Data: map[string][]byte{"USER": []byte("app"), "PASS": []byte("s3cret")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	yes := true
	grace := int64(1)
	newPod := func(name string, c v1.Container) *v1.Pod {
		c.Name, c.Image = "main", busybox
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: v1.PodSpec{NodeName: n.name, TerminationGracePeriodSeconds: &grace, AutomountServiceAccountToken: new(bool),
				Containers: []v1.Container{c}}}
	}
	cmKey := func(env, name, key string) v1.EnvVar {
		return v1.EnvVar{Name: env, ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{
			LocalObjectReference: v1.LocalObjectReference{Name: name}, Key: key}}}
	}
	secKey := func(env, name, key string) v1.EnvVar {
		return v1.EnvVar{Name: env, ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{
			LocalObjectReference: v1.LocalObjectReference{Name: name}, Key: key}}}
	}
	good := newPod("env", v1.Container{Command: []string{"sh", "-c", "env; echo DONE; exec sleep 3600"},
		EnvFrom: []v1.EnvFromSource{
			{Prefix: "CFG_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}}},
			{Prefix: "SEC_", SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "creds"}}},
			{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Optional: &yes}},
		},
		Env: []v1.EnvVar{
			{Name: "CFG_OVERRIDDEN", Value: "from-env"},
			cmKey("MODE_REF", "settings", "MODE"),
			secKey("PASS_REF", "creds", "PASS"),
			{Name: "DSN", Value: "$(SEC_USER):$(PASS_REF)@db/$(CFG_LEVEL)"},
		}})
	created, err := cp.core.Pods("default").Create(ctx, good, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	missingKey := newPod("missing-key", v1.Container{Command: []string{"true"}, Env: []v1.EnvVar{secKey("X", "creds", "nope")}})
	missingCM := newPod("missing-cm", v1.Container{Command: []string{"true"},
		EnvFrom: []v1.EnvFromSource{{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}}}}})
	for _, p := range []*v1.Pod{missingKey, missingCM} {
		if _, err := cp.core.Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	logDir := filepath.Join(n.logs, "default_env_"+string(created.UID), "main")
	var log string
	n.eventually(90*time.Second, "the env pod's env in its log", func() bool {
		matches, _ := filepath.Glob(filepath.Join(logDir, "*.log"))
		if len(matches) == 0 {
			return false
		}
		data, _ := os.ReadFile(matches[0])
		log = string(data)
		return strings.Contains(log, "DONE")
	})
	env := map[string]string{}
	for _, line := range strings.Split(log, "\n") {
		// A CRI log line: time, stream, tag, then the content.
		f := strings.SplitN(line, " ", 4)
		if len(f) == 4 {
			if k, v, ok := strings.Cut(f[3], "="); ok {
				env[k] = v
			}
		}
	}
	for k, want := range map[string]string{
		"CFG_MODE": "fast", "CFG_LEVEL": "3", "CFG_OVERRIDDEN": "from-env", "SEC_USER": "app", "SEC_PASS": "s3cret",
		"MODE_REF": "fast", "PASS_REF": "s3cret", "DSN": "app:s3cret@db/3",
	} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q; env:\n%s", k, env[k], want, log)
		}
	}
	if v, ok := env["CFG_BLOB"]; ok {
		t.Errorf("binaryData reached the env (CFG_BLOB=%q); the kubelet takes data alone", v)
	}

	for name, want := range map[string]string{
		"missing-key": "couldn't find key nope in Secret default/creds",
		"missing-cm":  `configmap "absent" not found`,
	} {
		var got *v1.ContainerStateWaiting
		n.eventually(90*time.Second, name+": CreateContainerConfigError in the API status", func() bool {
			p, err := cp.core.Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil || len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			got = p.Status.ContainerStatuses[0].State.Waiting
			return got != nil && got.Reason == "CreateContainerConfigError"
		})
		if got.Message != want {
			t.Errorf("%s: waiting message %q, want %q", name, got.Message, want)
		}
	}
}
