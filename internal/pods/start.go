package pods

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	crierrors "k8s.io/cri-api/pkg/errors"

	"knode.io/knode/internal/crispec"
	"knode.io/knode/internal/keyring"
	"knode.io/knode/internal/subpath"
)

// start pulls the image as the pull policy says, then creates and starts
// one new instance of c. Failures become the container's waiting reason.
func (s *podSync) start(ctx context.Context, c *v1.Container, isInit bool) {
	w := s.w
	restarts := 0
	if prev := first(s.rp.instances(c.Name, "")); prev != nil {
		restarts = restartCount(prev) + 1
	}
	// A container whose image is an archive restores every time; one restored
	// by annotation restores only its first instance, restarts start fresh.
	archive, fallback := "", false
	if (restarts == 0 || strings.HasPrefix(c.Image, "/")) && !w.restoreFailed[c.Name] {
		var err error
		archive, fallback, err = w.d.Restores.Source(s.pod, c)
		if err != nil {
			s.restoreFailed(c, archive, fallback, err)
			return
		}
	}
	// The image is resolved to its ID once: the user check and the
	// container both use that ID, never the name again (a tag can be
	// re-pointed in between). A restore names no image the runtime runs
	// (it takes the archive's), so the name is checked as it stands.
	imageRef := c.Image
	if archive == "" {
		var err error
		if imageRef, err = s.ensureImage(ctx, c); err != nil {
			return
		}
	}
	cfg, err := w.d.containerConfig(w.rec.files, s.pod, c, imageRef, restarts, isInit, s.podIP)
	if err != nil {
		w.waits[c.Name] = waiting{reason: "CreateContainerConfigError", message: err.Error()}
		s.warning("Failed", "Error: "+err.Error())
		s.requeue(10 * time.Second)
		return
	}
	crispec.ContainerUserNamespace(cfg, s.sbConfig)
	if err := s.shareTargetPID(c.Name, cfg); err != nil {
		w.waits[c.Name] = waiting{reason: "CreateContainerConfigError", message: err.Error()}
		s.warning("Failed", "Error: "+err.Error())
		s.requeue(time.Second)
		return
	}
	if archive != "" {
		// The runtime restores a container whose image is a checkpoint archive.
		cfg.Image = &runtimeapi.ImageSpec{Image: archive, UserSpecifiedImage: archive}
		w.d.log.Info("restoring container from a checkpoint", "pod", podRef(s.pod, nil), "container", c.Name, "archive", archive)
	}
	rt := w.d.Runtime
	cctx, cancel := context.WithTimeout(ctx, w.d.RequestTimeout)
	defer cancel()
	restoreStart := time.Now()
	id, err := rt.CreateContainer(cctx, s.sb.Id, cfg, s.sbConfig)
	if err != nil && archive != "" {
		s.restoreFailed(c, archive, fallback, w.d.Restores.CreateFailed(archive, err))
		return
	}
	if err != nil {
		w.d.Recorder.ContainerStarted(containerType(c, isInit), err)
		w.waits[c.Name] = waiting{reason: "CreateContainerError", message: err.Error()}
		s.warning("Failed", "Error: "+err.Error())
		w.d.log.Warn("create container failed", "pod", podRef(s.pod, nil), "container", c.Name, "err", err)
		s.dropSubPaths(c)
		s.requeue(10 * time.Second)
		return
	}
	s.normal("Created", "Created container: "+c.Name)
	if err := w.d.Devices.PreStart(ctx, s.pod, c); err != nil {
		w.waits[c.Name] = waiting{reason: "RunContainerError", message: err.Error()}
		s.warning("Failed", "Error: "+err.Error())
		_ = rt.RemoveContainer(cctx, id)
		s.dropSubPaths(c)
		s.requeue(10 * time.Second)
		return
	}
	err = rt.StartContainer(cctx, id)
	w.d.Recorder.ContainerStarted(containerType(c, isInit), err)
	if err != nil {
		w.waits[c.Name] = waiting{reason: "RunContainerError", message: err.Error()}
		s.warning("Failed", "Error: "+err.Error())
		w.d.log.Warn("start container failed", "pod", podRef(s.pod, nil), "container", c.Name, "err", err)
		// A container that never started is removed so the next try is clean.
		_ = rt.RemoveContainer(cctx, id)
		s.dropSubPaths(c)
		s.requeue(10 * time.Second)
		return
	}
	s.normal("Started", "Started container "+c.Name)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		// As the kubelet: the hook runs before anything else starts; if it
		// fails the container is stopped and its restart policy decides.
		if err := w.d.hooks.runHook(ctx, c.Lifecycle.PostStart, c, id, s.podIP); err != nil {
			w.waits[c.Name] = waiting{reason: "PostStartHookError", message: err.Error()}
			s.warning("FailedPostStartHook", fmt.Sprintf("PostStartHook failed: %v", err))
			w.d.log.Warn("postStart hook failed; stopping the container", "pod", podRef(s.pod, nil), "container", c.Name, "err", err)
			ct := &runtimeapi.Container{Id: id, State: runtimeapi.ContainerState_CONTAINER_RUNNING, Metadata: &runtimeapi.ContainerMetadata{Name: c.Name}}
			w.d.hooks.stopContainer(ctx, s.pod, ct, w.terminationGrace(s.rp), s.podIP)
			w.d.records.wakeRelist()
			s.requeue(time.Second)
			return
		}
	}
	delete(w.waits, c.Name)
	if archive != "" {
		w.d.Recorder.RestoreDone("success", time.Since(restoreStart))
		w.d.records.annotate(w.uid, restoredFromAnnotation, w.d.Restores.Describe(archive))
	}
	w.d.files.linkContainerLog(s.pod, c.Name, id, filepath.Join(s.sbConfig.LogDirectory, cfg.LogPath))
	w.d.log.Info("container started", "pod", podRef(s.pod, nil), "container", c.Name, "id", id, "restartCount", restarts)
	w.d.records.wakeRelist()
	s.requeue(time.Second)
}

// dropSubPaths unmounts and removes the subPath binds made for a container
// that was not created or was removed before it ran.
func (s *podSync) dropSubPaths(c *v1.Container) {
	if err := subpath.CleanContainer(PodDir(s.w.d.files.RootDir, s.pod), c.Name); err != nil {
		s.w.d.log.Warn("remove subPath mounts", "pod", podRef(s.pod, nil), "container", c.Name, "err", err)
	}
}

// restoreFailed either fails the pod with the restore's reason or, when the
// pod asked for it, lets the container start from its image and says so.
func (s *podSync) restoreFailed(c *v1.Container, archive string, fallback bool, err error) {
	w := s.w
	reason := "RestoreFailed"
	var r interface{ Reason() string }
	if errors.As(err, &r) {
		reason = r.Reason()
	}
	w.d.Recorder.RestoreDone(reason, 0)
	if fallback {
		w.restoreFailed[c.Name] = true
		w.notes[c.Name] = fmt.Sprintf("container %s: restore failed (%s: %v); started fresh from its image", c.Name, reason, err)
		w.d.log.Warn("restore failed; starting from the image as the pod asks", "pod", podRef(s.pod, nil), "container", c.Name, "reason", reason, "err", err)
		s.requeue(0)
		return
	}
	// The next sync sees the rejection and stops the pod's sandbox.
	w.rejected = &waiting{reason: reason, message: err.Error()}
	w.d.log.Error("restore failed; the pod fails", "pod", podRef(s.pod, nil), "container", c.Name, "archive", archive, "reason", reason, "err", err)
	s.requeue(0)
}

// ensureImage makes c's image present as its pull policy says, with the
// kubelet's reasons and events when it cannot, and returns the image's ID
// (its imageRef): the ID ImageStatus found, or the one the pull returned.
func (s *podSync) ensureImage(ctx context.Context, c *v1.Container) (string, error) {
	w := s.w
	images := w.d.Images
	spec := &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image}
	repo, err := keyring.Repository(c.Image)
	if err != nil {
		// The kubelet checks the reference before anything else.
		w.waits[c.Name] = waiting{reason: "InvalidImageName", message: fmt.Sprintf("Failed to apply default image tag %q: %v", c.Image, err)}
		s.warning("InspectFailed", w.waits[c.Name].message)
		s.warning("Failed", "Error: InvalidImageName")
		s.requeue(10 * time.Second)
		return "", err
	}
	ictx, cancel := context.WithTimeout(ctx, w.d.RequestTimeout)
	defer cancel()
	resp, err := images.ImageStatus(ictx, spec, false)
	if err != nil {
		w.waits[c.Name] = waiting{reason: "ErrImageInspect", message: fmt.Sprintf("Failed to inspect image %q: %v", c.Image, err)}
		s.requeue(10 * time.Second)
		return "", err
	}
	// Credentials are looked up once, and only when needed.
	var creds []keyring.Entry
	looked := false
	lookup := func() []keyring.Entry {
		if !looked {
			creds, looked = s.pullCredentials(ctx, repo), true
		}
		return creds
	}
	// As the kubelet's GetImageRef: an image the runtime reports without
	// an ID is not present.
	if img := resp.GetImage(); img.GetId() != "" && c.ImagePullPolicy != v1.PullAlways {
		if !w.d.pulls.records.mustPull(c.Image, img.Id, repo, lookup) {
			s.normal("Pulled", fmt.Sprintf("Container image %q already present on machine and can be accessed by the pod", c.Image))
			return img.Id, nil
		}
		// Pulled with a pull secret this pod does not hold: as the
		// kubelet, the pod pulls with its own credentials, or with
		// Never is told the image is not there (its presence is not
		// revealed).
		w.d.log.Info("image present but pulled with credentials this pod lacks; pulling with its own", "pod", podRef(s.pod, nil), "image", c.Image)
	}
	if c.ImagePullPolicy == v1.PullNever {
		w.waits[c.Name] = waiting{reason: "ErrImageNeverPull", message: fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)}
		s.warning("ErrImageNeverPull", w.waits[c.Name].message)
		s.requeue(10 * time.Second)
		return "", errors.New("image not present")
	}
	key := "pull_" + string(s.pod.UID) + "_" + c.Image
	bo := w.d.backoff
	if bo.IsInBackOffSinceUpdate(key, w.d.Now()) {
		msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
		s.normal("BackOff", msg)
		// As the kubelet (v1.32+), the waiting message carries why the
		// last pull failed; the event does not.
		if prev, ok := w.d.pulls.errs.Load(key); ok {
			msg = fmt.Sprintf("%s: %s", msg, prev)
		}
		w.waits[c.Name] = waiting{reason: "ImagePullBackOff", message: msg}
		s.warning("Failed", "Error: ImagePullBackOff")
		s.requeue(bo.Get(key))
		return "", errors.New("image pull back-off")
	}
	w.d.pulls.errs.Delete(key)
	lookup()
	pctx, pcancel := context.WithTimeout(ctx, max(w.d.RequestTimeout, 5*time.Minute))
	defer pcancel()
	s.normal("Pulling", fmt.Sprintf("Pulling image %q", c.Image))
	pullStart := time.Now()
	w.d.pulls.records.intent(c.Image)
	imageID, used, err := pullWithCredentials(pctx, images, spec, creds, s.sbConfig)
	if err == nil && imageID == "" {
		// Nothing else names what was pulled: the tag may already point
		// elsewhere.
		err = fmt.Errorf("the runtime pulled image %q but returned no image reference", c.Image)
	}
	w.d.pulls.records.pulled(c.Image, imageID, repo, used, err == nil)
	if err != nil {
		bo.Next(key, w.d.Now())
		reason, msg := pullFailure(c.Image, err)
		w.d.pulls.errs.Store(key, reason+": "+msg)
		w.waits[c.Name] = waiting{reason: reason, message: msg}
		s.warning("Failed", fmt.Sprintf("Failed to pull image %q: %v", c.Image, err))
		s.warning("Failed", "Error: "+reason)
		w.d.log.Warn("image pull failed", "pod", podRef(s.pod, nil), "container", c.Name, "image", c.Image, "credentials", len(creds), "err", err)
		// The next sync, within the back-off, reports ImagePullBackOff.
		s.requeue(time.Second)
		return "", err
	}
	bo.Reset(key)
	s.normal("Pulled", fmt.Sprintf("Successfully pulled image %q in %s", c.Image, time.Since(pullStart).Round(time.Millisecond)))
	return imageID, nil
}

// pullFailure is the waiting reason and message of a failed pull, the
// kubelet's evalCRIPullErr: the runtime's registry-unavailable and
// signature errors get their own reasons, anything else is ErrImagePull
// with the runtime's words.
func pullFailure(image string, err error) (reason, message string) {
	text := err.Error()
	for _, known := range []struct{ reason, why string }{
		{crierrors.ErrRegistryUnavailable.Error(), "the registry is unavailable"},
		{crierrors.ErrSignatureValidationFailed.Error(), "the signature validation failed"},
	} {
		if strings.HasPrefix(text, known.reason) {
			return known.reason, fmt.Sprintf("image pull failed for %s because %s%s", image, known.why, strings.TrimPrefix(text, known.reason))
		}
	}
	return "ErrImagePull", text
}

func (s *podSync) normal(reason, message string) {
	s.w.d.Events.Event(s.pod, v1.EventTypeNormal, reason, message)
}

func (s *podSync) warning(reason, message string) {
	s.w.d.Events.Event(s.pod, v1.EventTypeWarning, reason, message)
}
