package pods

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"

	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/podsource"
)

// TestAPodWithAVolumeKnodeCannotMakeIsRefused: a persistent volume claim,
// even one no container mounts, keeps the pod from starting, with its
// type named in each container's waiting reason and one FailedMount
// warning; it is never left out silently.
func TestAPodWithAVolumeKnodeCannotMakeIsRefused(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.RestartPolicyAlways, "init")
	pod.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{
		PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "claim"}}}}
	w := f.worker(pod)
	f.sync(w)
	st := f.sync(w)
	if n := len(f.rt.Sandboxes); n != 0 {
		t.Fatalf("%d sandboxes made for a pod whose volume cannot be made", n)
	}
	want := `volume "data": persistentVolumeClaim volumes are not supported by knode (supported: hostPath, emptyDir, configMap, secret, projected, downwardAPI)`
	for _, cs := range append(st.InitContainerStatuses, st.ContainerStatuses...) {
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CreateContainerConfigError" || cs.State.Waiting.Message != want {
			t.Errorf("container %s: state %+v, want CreateContainerConfigError %q", cs.Name, cs.State, want)
		}
	}
	if st.Phase != v1.PodPending {
		t.Errorf("phase %s, want Pending", st.Phase)
	}
	if got := f.events.take(); !slices.Equal(got, []string{"Warning FailedMount: " + want}) {
		t.Errorf("events %q", got)
	}
}

type fakeServices struct {
	list   []crispec.Service
	synced bool
}

func (s fakeServices) ServicesFor(string) ([]crispec.Service, bool) { return s.list, s.synced }

// TestServiceEnvironmentInTheContainerConfig: the service variables reach
// the container's CRI config after its own; an API pod waits for the
// first list of Services (the kubelet's error), a static pod does not;
// without an API server there are none.
func TestServiceEnvironmentInTheContainerConfig(t *testing.T) {
	kube := crispec.Service{Namespace: "default", Name: "kubernetes", ClusterIP: "10.96.0.1", Ports: []crispec.ServicePort{{Name: "https", Port: 443}}}
	deps := func(s Services) *workerDeps {
		return newWorkerDeps(Options{RootDir: t.TempDir(), PodLogsDir: t.TempDir(), Services: s, Images: critest.NewFakeImageService(),
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))}.withDefaults(), nil)
	}
	pod := func(source string) *v1.Pod {
		p := testPod(v1.RestartPolicyAlways)
		p.Spec.Containers[0].Env = []v1.EnvVar{{Name: "API", Value: "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"}}
		podsource.Stamp(source, []*v1.Pod{p})
		return p
	}
	envOf := func(t *testing.T, d *workerDeps, p *v1.Pod) (map[string]string, error) {
		t.Helper()
		cfg, err := d.containerConfig(newPodFileState(), p, &p.Spec.Containers[0], p.Spec.Containers[0].Image, 0, false, "10.88.0.5")
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		for _, kv := range cfg.Envs {
			m[kv.Key] = string(kv.Value)
		}
		return m, nil
	}

	env, err := envOf(t, deps(fakeServices{list: []crispec.Service{kube}, synced: true}), pod(podsource.API))
	if err != nil {
		t.Fatal(err)
	}
	if env["API"] != "https://10.96.0.1:443" || env["KUBERNETES_SERVICE_HOST"] != "10.96.0.1" || env["KUBERNETES_PORT_443_TCP"] != "tcp://10.96.0.1:443" {
		t.Errorf("env %v", env)
	}

	if _, err := envOf(t, deps(fakeServices{}), pod(podsource.API)); !errors.Is(err, errServicesNotSynced) {
		t.Errorf("an API pod before the first list of Services: %v, want %v", err, errServicesNotSynced)
	}
	if _, err := envOf(t, deps(fakeServices{}), pod(podsource.File)); err != nil {
		t.Errorf("a static pod waits for the Services: %v", err)
	}

	env, err = envOf(t, deps(nil), pod(podsource.File))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := env["KUBERNETES_SERVICE_HOST"]; ok || env["API"] != "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)" {
		t.Errorf("standalone env %v", env)
	}
}
