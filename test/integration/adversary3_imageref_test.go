package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"knode.io/knode/test/images"
)

// TestAdversary3RunAsNonRootOddImageSpellings: a pod author who must not
// run as root names a root image in every spelling containerd resolves
// locally — its full ID, a short ID prefix (containerd's image store
// looks IDs up by prefix), the bare 64-hex ID — in a main container and
// in an init container. None may start: the check reads the image the
// spelling resolves to, and the container is created from that same ID.
// A non-root image named by a short ID prefix runs, from its own ID, as
// its user (the spellings do resolve).
func TestAdversary3RunAsNonRootOddImageSpellings(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.importUserImages()
	var rootID, nonRootID string
	n.eventually(30*time.Second, "the imported images in the CRI", func() bool {
		rootID, nonRootID = n.imageID(busybox), n.imageID(images.BusyboxUID)
		return rootID != "" && nonRootID != ""
	})
	if rootID == nonRootID {
		t.Fatalf("image IDs: root %q non-root %q", rootID, nonRootID)
	}
	short := func(id string) string { return strings.TrimPrefix(id, "sha256:")[:12] }
	if n.imageID(short(rootID)) != rootID {
		t.Fatalf("containerd does not resolve the short ID %s to %s", short(rootID), rootID)
	}
	guarded := "  securityContext: {runAsNonRoot: true}\n"
	// Local resolution is the attack: a name without a tag would pull.
	const ifNotPresent = "    imagePullPolicy: IfNotPresent\n"
	refused := map[string]string{
		"root-id":    rootID,
		"root-short": short(rootID),
		"root-bare":  strings.TrimPrefix(rootID, "sha256:"),
	}
	for name, image := range refused {
		n.writeManifest(name+".yaml", securityPod(name, image, guarded, ifNotPresent))
	}
	// An init container naming the root image by prefix; the main
	// container's image is non-root.
	n.writeManifest("root-init.yaml", securityPod("root-init", images.BusyboxUID, guarded+fmt.Sprintf(`  initContainers:
  - name: init
    image: %s
    command: ["true"]
    imagePullPolicy: IfNotPresent
`, short(rootID)), ""))
	n.writeManifest("nonroot-short.yaml", securityPod("nonroot-short", short(nonRootID), guarded, ifNotPresent))
	n.startKnode()

	c := n.waitRunning("default", "nonroot-short", "main")
	if c.GetImageRef() != nonRootID || c.GetImage().GetImage() != nonRootID {
		t.Errorf("nonroot-short created from %v (ref %s), want %s", c.GetImage(), c.GetImageRef(), nonRootID)
	}
	if uid := execOut(n, c.Id, "id", "-u"); uid != "1000\n" {
		t.Errorf("nonroot-short runs as %q, want 1000", uid)
	}

	waiting := func(pod, container string) *v1.ContainerStateWaiting {
		p := n.apiPod(n.podName(pod))
		if p == nil {
			return nil
		}
		for _, list := range [][]v1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
			for _, cs := range list {
				if cs.Name == container && cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing" && cs.State.Waiting.Reason != "ContainerCreating" {
					return cs.State.Waiting
				}
			}
		}
		return nil
	}
	check := func(pod, container string) {
		var w *v1.ContainerStateWaiting
		n.eventually(2*time.Minute, pod+"/"+container+" held", func() bool { w = waiting(pod, container); return w != nil })
		t.Logf("%s/%s: %s: %s", pod, container, w.Reason, w.Message)
		switch w.Reason {
		case "CreateContainerConfigError":
			if !strings.Contains(w.Message, "container has runAsNonRoot and image will run as root") {
				t.Errorf("%s/%s: %s", pod, container, w.Message)
			}
		case "InvalidImageName":
		default:
			t.Errorf("%s/%s held with %s: %s, want CreateContainerConfigError or InvalidImageName", pod, container, w.Reason, w.Message)
		}
		if list := n.containers("default", pod, container); len(list) != 0 {
			t.Errorf("%s/%s: %d containers were created from a root image", pod, container, len(list))
		}
	}
	for name := range refused {
		check(name, "main")
	}
	check("root-init", "init")
	if list := n.containers("default", "root-init", "main"); len(list) != 0 {
		t.Errorf("root-init's main container started without its init container")
	}
}
