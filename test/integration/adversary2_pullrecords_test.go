package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestAdversary2PrivateImageAcrossNamespaces: an image a pod of namespace
// "owner" pulled with its pull secret is on the node. A tenant of
// namespace "tenant" without that credential names the same image in
// every spelling the runtime resolves locally — the tag, the repository
// digest, the bare image ID, the ID with its "sha256:" left off — under
// IfNotPresent and Never; none may run from the owner's pull. (Held:
// kept as the guard of KEP-2535's records across namespaces.)
func TestAdversary2PrivateImageAcrossNamespaces(t *testing.T) {
	t.Parallel()
	reg := startPrivateRegistry(t)
	image := reg.push(t, "private/owned")
	cp := newControlPlane(t)
	n := newNode(t)
	reg.trust(t, n)
	kc := cp.nodeKubeconfig(t, n)
	n.startKnode("--kubeconfig", kc)
	ctx := context.Background()
	for _, ns := range []string{"owner", "tenant"} {
		if _, err := cp.core.Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cp.core.ServiceAccounts(ns).Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cp.core.Secrets("owner").Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: v1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{v1.DockerConfigJsonKey: dockerConfigJSON(reg.host, registryUser, registryPassword)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The tenant's own secret for the registry holds a wrong password.
	if _, err := cp.core.Secrets("tenant").Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: v1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{v1.DockerConfigJsonKey: dockerConfigJSON(reg.host, registryUser, "guessed")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	grace := int64(1)
	newPod := func(ns, name, image string, policy v1.PullPolicy) {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1.PodSpec{NodeName: n.name, TerminationGracePeriodSeconds: &grace, AutomountServiceAccountToken: new(bool),
				ImagePullSecrets: []v1.LocalObjectReference{{Name: "regcred"}},
				Containers:       []v1.Container{{Name: "main", Image: image, ImagePullPolicy: policy, Command: []string{"sleep", "3600"}}}}}
		if _, err := cp.core.Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s/%s (%s): %v", ns, name, image, err)
		}
	}
	status := func(ns, name string) *v1.ContainerStatus {
		p, err := cp.core.Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return nil
		}
		return &p.Status.ContainerStatuses[0]
	}
	newPod("owner", "owner", image, v1.PullIfNotPresent)
	n.eventually(3*time.Minute, "the owner's pod running from the private registry", func() bool {
		s := status("owner", "owner")
		return s != nil && s.State.Running != nil
	})
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := n.cri.ImageStatus(ictx, &runtimeapi.ImageSpec{Image: image}, false)
	if err != nil || st.GetImage() == nil {
		t.Fatalf("the owner's image is not on the node: %v", err)
	}
	id := st.GetImage().GetId()
	spellings := map[string]string{"tag": image, "id": id, "bare-id": strings.TrimPrefix(id, "sha256:")}
	for i, d := range st.GetImage().GetRepoDigests() {
		spellings["digest"+string(rune('a'+i))] = d
	}
	t.Logf("the owner's image: %v", spellings)
	var names []string
	for what, ref := range spellings {
		policies := []v1.PullPolicy{v1.PullIfNotPresent, v1.PullNever}
		if strings.HasSuffix(what, "id") {
			// Never alone: the record is checked before the policy, and a
			// pull of an ID would go to Docker Hub, off this machine.
			policies = policies[1:]
		}
		for _, policy := range policies {
			name := strings.ToLower(what + "-" + string(policy))
			names = append(names, name)
			newPod("tenant", name, ref, policy)
		}
	}
	for _, name := range names {
		n.eventually(3*time.Minute, "tenant/"+name+" waiting with a reason", func() bool {
			s := status("tenant", name)
			return s != nil && (s.State.Running != nil || s.State.Terminated != nil ||
				(s.State.Waiting != nil && s.State.Waiting.Reason != "ContainerCreating"))
		})
		if s := status("tenant", name); s.State.Waiting == nil {
			t.Errorf("tenant/%s (%s) ran from the owner's private pull: %+v", name, s.Image, s.State)
		} else {
			t.Logf("tenant/%s: %s %s", name, s.State.Waiting.Reason, s.State.Waiting.Message)
		}
	}
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	defer lcancel()
	list, err := n.cri.ListContainers(lctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.pod.namespace": "tenant"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		t.Errorf("the tenant has a container: %s of %s", c.Metadata.Name, c.Labels["io.kubernetes.pod.name"])
	}
}
