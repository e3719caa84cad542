package pods

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	"k8s.io/utils/ptr"

	"knode.io/knode/internal/cri"
	"knode.io/knode/test/fakecri"
)

// grpcFixture is a fixture whose manager speaks real CRI gRPC to the fake
// runtime server, which resolves images as containerd does: by tag or ID,
// at the moment each call arrives.
func grpcFixture(t *testing.T) (*fixture, *fakecri.Server) {
	t.Helper()
	srv := fakecri.StartTemp(t)
	rt, err := cri.Connect(t.Context(), slog.New(slog.NewTextHandler(io.Discard, nil)), "unix://"+srv.Socket, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(t.Context()) })
	f := fixtureOn(t, rt, rt)
	f.rt = srv.Fake
	return f, srv
}

func fakeImage(hex string, uid int64) *runtimeapi.Image {
	return &runtimeapi.Image{Id: "sha256:" + strings.Repeat(hex, 64), Size: 1, Uid: &runtimeapi.Int64Value{Value: uid}}
}

// createdContainer is what the runtime recorded of a container it created.
type createdContainer struct {
	image    *runtimeapi.ImageSpec
	imageRef string
}

// created is the one container the runtime created for name.
func (f *fixture) created(name string) createdContainer {
	f.t.Helper()
	f.rt.Lock()
	defer f.rt.Unlock()
	var found []createdContainer
	for _, c := range f.rt.Containers {
		if c.Metadata.Name == name {
			found = append(found, createdContainer{image: c.Image, imageRef: c.ImageRef})
		}
	}
	if len(found) != 1 {
		f.t.Fatalf("%d containers named %s, want 1", len(found), name)
	}
	return found[0]
}

// The image runAsNonRoot was checked against is the image that runs: a
// tag re-pointed at a root image after knode's checks (a push to the
// registry and another pod pulling the tag with imagePullPolicy Always)
// cannot slip in, because the container is created from the image ID the
// check read, as the kubelet creates it.
func TestRunAsNonRootImageIsTheImageCreated(t *testing.T) {
	f, srv := grpcFixture(t)
	const tag = "example/app:1"
	nonRoot, root := fakeImage("a", 1000), fakeImage("b", 0)
	srv.TagImage(tag, nonRoot)
	srv.TagImage("example/root:1", root)
	srv.BeforeCreate(func(*runtimeapi.ContainerConfig) { srv.TagImage(tag, root) })

	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}
	st := f.sync(f.worker(pod))

	c := f.created("app")
	if c.imageRef != nonRoot.Id {
		t.Fatalf("the runtime ran image %s (asked for %v), want the checked non-root image %s", c.imageRef, c.image, nonRoot.Id)
	}
	if c.image.GetImage() != nonRoot.Id || c.image.GetUserSpecifiedImage() != tag {
		t.Errorf("created from %v, want image %s specified as %s", c.image, nonRoot.Id, tag)
	}
	cs := st.ContainerStatuses[0]
	if cs.Image != tag || cs.ImageID != nonRoot.Id || cs.State.Running == nil {
		t.Errorf("status image %q imageID %q state %+v, want %q %q running", cs.Image, cs.ImageID, cs.State, tag, nonRoot.Id)
	}
}

// Each start resolves the tag again, as the kubelet's EnsureImageExists
// does (IfNotPresent takes the image the tag names now): a restarted
// container whose tag now names a root image is checked against that
// image and refused, not created from the name.
func TestRestartChecksTheImageTheTagNamesNow(t *testing.T) {
	f, srv := grpcFixture(t)
	const tag = "example/app:1"
	nonRoot, root := fakeImage("a", 1000), fakeImage("b", 0)
	srv.TagImage(tag, nonRoot)

	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}
	w := f.worker(pod)
	f.sync(w)
	if c := f.created("app"); c.imageRef != nonRoot.Id {
		t.Fatalf("first instance runs %s, want %s", c.imageRef, nonRoot.Id)
	}
	srv.TagImage(tag, root)
	f.exit("app", 1)
	st := f.sync(w) // the first restart is immediate
	cs := st.ContainerStatuses[0]
	want := `container has runAsNonRoot and image will run as root (pod: "web-n1_default(uid-1)", container: app)`
	if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CreateContainerConfigError" || cs.State.Waiting.Message != want {
		t.Fatalf("restart after the tag moved to a root image: %+v, want CreateContainerConfigError %q", cs.State, want)
	}
	if _, total := f.count("app"); total != 1 {
		t.Errorf("%d containers named app, want only the first", total)
	}
}

// An ephemeral container (kubectl debug) starts through the same path: it
// too runs the image ID its check read, and reports its spec's name.
func TestEphemeralContainerRunsItsCheckedImageID(t *testing.T) {
	f, srv := grpcFixture(t)
	const debugTag = "example/debug:1"
	app, debug, root := fakeImage("a", 1000), fakeImage("c", 1000), fakeImage("b", 0)
	srv.TagImage("example/app:1", app)
	srv.TagImage(debugTag, debug)
	srv.BeforeCreate(func(cfg *runtimeapi.ContainerConfig) {
		if cfg.GetMetadata().GetName() == "debug" {
			srv.TagImage(debugTag, root)
		}
	})
	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}
	pod.Spec.EphemeralContainers = []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{
		Name: "debug", Image: debugTag, ImagePullPolicy: v1.PullIfNotPresent}}}
	st := f.sync(f.worker(pod))

	c := f.created("debug")
	if c.imageRef != debug.Id || c.image.GetImage() != debug.Id || c.image.GetUserSpecifiedImage() != debugTag {
		t.Fatalf("debug container created from %v and ran %s, want %s specified as %s", c.image, c.imageRef, debug.Id, debugTag)
	}
	if len(st.EphemeralContainerStatuses) != 1 || st.EphemeralContainerStatuses[0].Image != debugTag || st.EphemeralContainerStatuses[0].ImageID != debug.Id {
		t.Errorf("ephemeral statuses %+v, want image %s with ID %s", st.EphemeralContainerStatuses, debugTag, debug.Id)
	}
}

// noRefImages is an image service whose pulls succeed without saying what
// they pulled.
type noRefImages struct{ *critest.FakeImageService }

func (noRefImages) PullImage(context.Context, *runtimeapi.ImageSpec, *runtimeapi.AuthConfig, *runtimeapi.PodSandboxConfig) (string, error) {
	return "", nil
}

// A pull that returns no image reference leaves nothing to create the
// container from but the name, which may already name another image: the
// start fails as a pull does, and nothing is created.
func TestPullWithoutImageReferenceIsAPullFailure(t *testing.T) {
	rt := critest.NewFakeRuntimeService()
	f := fixtureOn(t, rt, noRefImages{critest.NewFakeImageService()})
	f.rt = rt
	st := f.sync(f.worker(testPod(v1.RestartPolicyAlways)))
	w := st.ContainerStatuses[0].State.Waiting
	want := `the runtime pulled image "example/app:1" but returned no image reference`
	if w == nil || w.Reason != "ErrImagePull" || w.Message != want {
		t.Fatalf("waiting %+v, want ErrImagePull %q", w, want)
	}
	if _, total := f.count("app"); total != 0 {
		t.Errorf("%d containers created, want none", total)
	}
}
