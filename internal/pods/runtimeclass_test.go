package pods

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

type runtimeClasses map[string]string

func (r runtimeClasses) RuntimeHandler(_ context.Context, name string) (string, error) {
	if h, ok := r[name]; ok {
		return h, nil
	}
	return "", errors.New(`runtimeclasses.node.k8s.io "` + name + `" not found`)
}

// TestRuntimeClassPicksTheHandler: a pod's runtimeClassName becomes the
// handler of its sandbox; a class that cannot be resolved (none known
// without an API server, or missing) leaves the pod without a sandbox,
// never under the default handler, with the kubelet's messages.
func TestRuntimeClassPicksTheHandler(t *testing.T) {
	class := func(name string) *v1.Pod {
		p := testPod(v1.RestartPolicyAlways)
		p.Spec.RuntimeClassName = &name
		return p
	}
	f := newFixture(t)
	f.m.d.runtimeClasses = runtimeClasses{"sandboxed": "runsc"}
	f.sync(f.worker(class("sandboxed")))
	f.rt.Lock()
	var handlers []string
	for _, sb := range f.rt.Sandboxes {
		handlers = append(handlers, sb.RuntimeHandler)
	}
	f.rt.Unlock()
	if len(handlers) != 1 || handlers[0] != "runsc" {
		t.Fatalf("sandbox handlers %q, want [runsc]", handlers)
	}

	for _, tc := range []struct {
		name    string
		classes RuntimeClasses
		want    string
	}{
		{"missing", runtimeClasses{}, `runtimeclasses.node.k8s.io "other" not found`},
		{"standalone", nil, `runtimeclass.node.k8s.io "other" not found: without an API server knode knows no RuntimeClass`},
	} {
		f := newFixture(t)
		f.m.d.runtimeClasses = tc.classes
		pod := class("other")
		st := f.sync(f.worker(pod))
		f.rt.Lock()
		n := len(f.rt.Sandboxes)
		f.rt.Unlock()
		wantMsg := `Failed to create sandbox for pod "web-n1_default(uid-1)": ` + tc.want
		if n != 0 || st.Phase != v1.PodPending || st.Reason != "CreatePodSandboxError" || st.Message != wantMsg {
			t.Errorf("%s: %d sandboxes, status %s %s %q, want no sandbox, Pending, %q", tc.name, n, st.Phase, st.Reason, st.Message, wantMsg)
		}
		found := false
		for _, e := range f.events.take() {
			found = found || strings.HasPrefix(e, "Warning FailedCreatePodSandBox: Failed to create pod sandbox: "+tc.want)
		}
		if !found {
			t.Errorf("%s: no FailedCreatePodSandBox event", tc.name)
		}
	}
}
