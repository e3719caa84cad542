package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/test/images"
)

// imageID is the ID the node's runtime resolves ref to now ("" if none).
func (n *node) imageID(ref string) string {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := n.cri.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil {
		n.t.Fatalf("image status %s: %v", ref, err)
	}
	return resp.GetImage().GetId()
}

// retag points tag at the image src names in the node's containerd (ctr
// images tag --force), as a pull of a re-pushed tag would, and waits until
// the CRI sees it.
func (n *node) retag(src, tag string) {
	n.t.Helper()
	ctr := filepath.Join(filepath.Dir(n.runtime.Binary()), "ctr")
	out, err := exec.Command(ctr, "--address", n.layout().Socket(), "--namespace", "k8s.io", "images", "tag", "--force", src, tag).CombinedOutput()
	if err != nil {
		n.t.Fatalf("ctr images tag %s %s: %v: %s", src, tag, err, out)
	}
	want := n.imageID(src)
	n.eventually(30*time.Second, tag+" resolving to "+want, func() bool { return n.imageID(tag) == want })
}

// podStatusOf is the container's status in the pod knode reports.
func (n *node) podStatusOf(pod, container string) (v1.ContainerStatus, bool) {
	p := n.apiPod(n.podName(pod))
	if p == nil {
		return v1.ContainerStatus{}, false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == container {
			return cs, true
		}
	}
	return v1.ContainerStatus{}, false
}

// TestContainersRunTheImageIDTheyWereCheckedAgainst: against containerd,
// a container is created from the image ID its image was resolved to
// (ImageSpec{Image: ID, UserSpecifiedImage: the spec's name}, as the
// kubelet creates it), the pod status shows the spec's name as image and
// the runtime's reference as imageID, and a tag re-pointed while the pod
// runs (ctr images tag --force, as a pull of a re-pushed tag) is resolved
// again only when a container starts anew — as the kubelet's
// IfNotPresent does — and runAsNonRoot is checked against the image it
// then names: a restarted container whose tag now names a root image is
// refused with CreateContainerConfigError, one without runAsNonRoot runs
// the new image, and running containers keep theirs.
func TestContainersRunTheImageIDTheyWereCheckedAgainst(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.importUserImages()
	const tag = "knode.local/moving:1"
	n.retag(images.BusyboxUID, tag)
	nonRoot, root := n.imageID(images.BusyboxUID), n.imageID(busybox)
	if nonRoot == "" || root == "" || nonRoot == root {
		t.Fatalf("image IDs: non-root %q root %q", nonRoot, root)
	}
	n.writeManifest("guarded.yaml", securityPod("guarded", tag, "  securityContext: {runAsNonRoot: true}\n", ""))
	n.writeManifest("plain.yaml", securityPod("plain", tag, "", ""))
	n.startKnode()

	for _, pod := range []string{"guarded", "plain"} {
		c := n.waitRunning("default", pod, "main")
		if c.GetImage().GetImage() != nonRoot || c.GetImage().GetUserSpecifiedImage() != tag || c.GetImageRef() != nonRoot {
			t.Errorf("pod %s: container created from %v (ref %s), want image %s specified as %s", pod, c.GetImage(), c.GetImageRef(), nonRoot, tag)
		}
		if uid := execOut(n, c.Id, "id", "-u"); uid != "1000\n" {
			t.Errorf("pod %s runs as %q, want 1000", pod, uid)
		}
		rst := n.containerStatus(c.Id)
		var cs v1.ContainerStatus
		n.eventually(60*time.Second, "pod "+pod+" status running", func() bool {
			var ok bool
			cs, ok = n.podStatusOf(pod, "main")
			return ok && cs.State.Running != nil
		})
		// The kubelet's imageID is the runtime's ImageRef: the image's repo
		// digest if it has one, else its ID.
		if cs.Image != tag || cs.ImageID == "" || cs.ImageID != rst.GetImageRef() {
			t.Errorf("pod %s status image %q imageID %q, want %q and the runtime's %q", pod, cs.Image, cs.ImageID, tag, rst.GetImageRef())
		}
	}

	// The tag moves to a root image while both pods run.
	n.retag(busybox, tag)
	running := map[string]string{}
	for _, pod := range []string{"guarded", "plain"} {
		c := n.running("default", pod, "main")
		if c == nil || c.GetImageRef() != nonRoot {
			t.Fatalf("pod %s: running container %v changed when the tag moved", pod, c)
		}
		if uid := execOut(n, c.Id, "id", "-u"); uid != "1000\n" {
			t.Errorf("pod %s runs as %q after the tag moved, want 1000", pod, uid)
		}
		running[pod] = c.Id
	}

	// Restarts resolve the tag again.
	ctx := t.Context()
	for _, id := range running {
		if err := n.cri.StopContainer(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	want := fmt.Sprintf(`container has runAsNonRoot and image will run as root (pod: "%s_default(%s)", container: main)`,
		n.podName("guarded"), n.apiPod(n.podName("guarded")).UID)
	n.eventually(90*time.Second, "guarded held with CreateContainerConfigError", func() bool {
		cs, ok := n.podStatusOf("guarded", "main")
		return ok && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CreateContainerConfigError" && cs.State.Waiting.Message == want
	})
	if list := n.containers("default", "guarded", "main"); len(list) != 1 {
		t.Errorf("guarded has %d containers, want only the stopped first one", len(list))
	}
	var c *runtimeapi.Container
	n.eventually(90*time.Second, "plain restarted", func() bool {
		c = n.running("default", "plain", "main")
		return c != nil && c.Id != running["plain"]
	})
	if c.GetImage().GetImage() != root || c.GetImage().GetUserSpecifiedImage() != tag || c.GetImageRef() != root {
		t.Errorf("plain restarted from %v (ref %s), want image %s specified as %s", c.GetImage(), c.GetImageRef(), root, tag)
	}
	if uid := execOut(n, c.Id, "id", "-u"); uid != "0\n" {
		t.Errorf("plain restarted runs as %q, want root (0) from the image the tag names now", uid)
	}
	rst := n.containerStatus(c.Id)
	n.eventually(60*time.Second, "plain's status to show the new instance", func() bool {
		cs, ok := n.podStatusOf("plain", "main")
		return ok && cs.ContainerID == "containerd://"+c.Id && cs.Image == tag && cs.ImageID == rst.GetImageRef()
	})
}

// untag removes the name ref from the node's containerd (ctr images rm):
// the image stays if another name holds it.
func (n *node) untag(ref string) {
	n.t.Helper()
	ctr := filepath.Join(filepath.Dir(n.runtime.Binary()), "ctr")
	out, err := exec.Command(ctr, "--address", n.layout().Socket(), "--namespace", "k8s.io", "images", "rm", ref).CombinedOutput()
	if err != nil {
		n.t.Fatalf("ctr images rm %s: %v: %s", ref, err, out)
	}
	n.eventually(30*time.Second, ref+" gone from the CRI", func() bool { return n.imageID(ref) == "" })
}

// TestCheckpointOfAContainerWhoseTagMoved: a container created from its
// image's ID keeps its image's name in a checkpoint archive even when
// that image lost its last tag before the checkpoint (its tag was
// re-pointed): the archive's details, which a migration's manifest is
// written from, name the image by the spec's name, not by a bare ID
// another machine cannot pull.
func TestCheckpointOfAContainerWhoseTagMoved(t *testing.T) {
	t.Parallel()
	n := newNodeWithCRIU(t, criu41(t))
	n.importUserImages()
	const tag = "knode.local/checkpointed:1"
	n.retag(busybox, tag)
	n.untag(busybox)
	n.writeManifest("moved.yaml", securityPod("moved", tag, "", ""))
	n.startKnode()
	c := n.waitRunning("default", "moved", "main")
	n.waitKnodeRunning("default", "moved", "main")
	n.retag(images.BusyboxUID, tag)
	if st := n.containerStatus(c.Id); st.GetImage().GetImage() == tag {
		t.Fatalf("the runtime still names the image %s: the test does not cover an image without tags", tag)
	}
	code, _, body := n.raw("POST", n.checkpointPath("default", "moved", "main", "timeout=60"))
	var answer struct{ Items []string }
	if code != 200 || json.Unmarshal([]byte(body), &answer) != nil || len(answer.Items) != 1 {
		t.Fatalf("checkpoint: %d %q", code, body)
	}
	code, _, body = n.raw("GET", "/checkpoints/"+filepath.Base(answer.Items[0]))
	var d struct{ Image, ImageRef string }
	if code != 200 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("inspect: %d %s", code, body)
	}
	if d.Image != tag {
		t.Errorf("the archive's image is %q (ref %q), want the spec's name %q", d.Image, d.ImageRef, tag)
	}
}

// TestAlwaysPullRunsWhatTheRegistryServes: with imagePullPolicy Always a
// container is created from the image ID the pull returned, and a restart
// pulls again: a tag re-pointed on the node alone (not in the registry)
// does not change what the restarted container runs, as with the kubelet.
func TestAlwaysPullRunsWhatTheRegistryServes(t *testing.T) {
	t.Parallel()
	reg := startPrivateRegistry(t)
	ref := reg.push(t, "private/always")
	n := newNode(t)
	reg.trust(t, n)
	n.importUserImages()
	if err := os.MkdirAll(n.rootDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.rootDir(), "config.json"), dockerConfigJSON(reg.host, registryUser, registryPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	n.writeManifest("always.yaml", securityPod("always", ref, "", "    imagePullPolicy: Always\n"))
	n.startKnode()
	first := n.waitRunning("default", "always", "main")
	pulled := n.imageID(ref)
	if pulled == "" || first.GetImageRef() != pulled || first.GetImage().GetImage() != pulled || first.GetImage().GetUserSpecifiedImage() != ref {
		t.Fatalf("created from %v (ref %s), want the pulled image %s specified as %s", first.GetImage(), first.GetImageRef(), pulled, ref)
	}

	n.retag(images.BusyboxUID, ref)
	if err := n.cri.StopContainer(t.Context(), first.Id, 0); err != nil {
		t.Fatal(err)
	}
	var c *runtimeapi.Container
	n.eventually(90*time.Second, "the container restarted", func() bool {
		c = n.running("default", "always", "main")
		return c != nil && c.Id != first.Id
	})
	if c.GetImageRef() != pulled || c.GetImage().GetImage() != pulled {
		t.Errorf("restarted from %v (ref %s), want the registry's image %s again, not the node's re-pointed tag", c.GetImage(), c.GetImageRef(), pulled)
	}
	if uid := execOut(n, c.Id, "id", "-u"); uid != "0\n" {
		t.Errorf("restarted container runs as %q, want 0 (the registry's busybox)", uid)
	}
}
