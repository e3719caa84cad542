package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Annotations that ask for a restore while the manifest keeps its normal image.
const (
	// RestoreAnnotationPrefix + <container>: an archive name (in an allowed
	// directory) or path.
	RestoreAnnotationPrefix = "checkpoint.knode.io/restore-"
	// FallbackAnnotation "image" starts the container fresh from its image
	// when the archive cannot be restored.
	FallbackAnnotation = "checkpoint.knode.io/restore-fallback"
)

// RestoreError is a restore that cannot happen, with the pod status reason.
type RestoreError struct {
	reason  string
	message string
}

func (e *RestoreError) Error() string { return e.message }

// Reason is the pod status reason (RestoreNotSupported, InvalidCheckpoint, ...).
func (e *RestoreError) Reason() string { return e.reason }

// Restores decides which containers start from a checkpoint archive and
// checks the archives. Only archives inside Dirs are ever used.
type Restores struct {
	// Dirs are the checkpoints directory and --restore-dirs.
	Dirs []string
	// Runtime is "<name>://<version>", for messages.
	Runtime string
}

// Source returns the archive c should be restored from ("" for none), and
// whether the pod asked to fall back to the image when that fails. The
// image field holding an absolute path, or the restore annotation, asks
// for a restore.
func (r *Restores) Source(pod *v1.Pod, c *v1.Container) (string, bool, error) {
	fallback := pod.Annotations[FallbackAnnotation] == "image"
	ref, fromAnnotation := pod.Annotations[RestoreAnnotationPrefix+c.Name]
	switch {
	case fromAnnotation:
	case strings.HasPrefix(c.Image, "/"):
		ref, fallback = c.Image, false // no image to fall back to
	default:
		return "", false, nil
	}
	path, err := r.resolve(ref)
	if err != nil {
		return "", fallback, err
	}
	return path, fallback, nil
}

// resolve finds ref (a name or a path) inside an allowed directory and
// checks that it is a checkpoint archive.
func (r *Restores) resolve(ref string) (string, error) {
	var candidates []string
	if filepath.IsAbs(ref) {
		candidates = []string{filepath.Clean(ref)}
	} else {
		if strings.ContainsAny(ref, "/\\\x00") || ref == "." || ref == ".." {
			return "", &RestoreError{reason: "CheckpointNotAllowed", message: fmt.Sprintf("checkpoint %q: give an archive name or an absolute path", ref)}
		}
		for _, d := range r.Dirs {
			candidates = append(candidates, filepath.Join(d, ref))
		}
	}
	var lastErr error = &RestoreError{reason: "CheckpointNotFound", message: fmt.Sprintf("checkpoint archive %q not found in %s", ref, strings.Join(r.Dirs, ", "))}
	for _, p := range candidates {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				lastErr = &RestoreError{reason: "CheckpointNotFound", message: fmt.Sprintf("checkpoint archive %s does not exist", p)}
				continue
			}
			return "", &RestoreError{reason: "CheckpointNotFound", message: fmt.Sprintf("checkpoint archive %s: %v", p, err)}
		}
		if !r.allowed(real) {
			return "", &RestoreError{reason: "CheckpointNotAllowed",
				message: fmt.Sprintf("checkpoint archive %s is outside the restore directories (%s); add its directory with --restore-dirs", p, strings.Join(r.Dirs, ", "))}
		}
		fi, err := os.Stat(real)
		if err != nil || !fi.Mode().IsRegular() {
			return "", &RestoreError{reason: "InvalidCheckpoint", message: fmt.Sprintf("checkpoint archive %s is not a regular file", p)}
		}
		if _, err := ReadDetails(real); err != nil {
			return "", &RestoreError{reason: "InvalidCheckpoint", message: fmt.Sprintf("%s is not a checkpoint archive: %v", p, err)}
		}
		return real, nil
	}
	return "", lastErr
}

func (r *Restores) allowed(path string) bool {
	for _, d := range r.Dirs {
		real, err := filepath.EvalSymlinks(d)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(real, path); err == nil && rel != "." && !strings.HasPrefix(rel, "..") && !strings.Contains(rel, "/") {
			return true
		}
	}
	return false
}

// CreateFailed explains a runtime's refusal to create a container from an
// archive. containerd 2.4 answers that the "image" cannot be resolved; a
// runtime without checkpoint support answers otherwise.
func (r *Restores) CreateFailed(archive string, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "failed to resolve image") || strings.Contains(msg, "not found") && strings.Contains(msg, archive) ||
		strings.Contains(msg, "Unimplemented") || strings.Contains(msg, "not implemented") {
		return &RestoreError{reason: "RestoreNotSupported", message: fmt.Sprintf(
			"the runtime %s cannot restore a checkpoint through CRI (it answered: %s). Runtimes that can: containerd 2.1–2.3 with "+
				"enable_experimental_restore_via_create = true, and CRI-O with checkpoint/restore enabled (enable_criu_support = true)", r.Runtime, msg)}
	}
	return &RestoreError{reason: "RestoreFailed", message: fmt.Sprintf("restoring from %s failed: %s", archive, msg)}
}

// RestoredFromAnnotation records on a pod which archive (and digest) its
// containers were restored from.
const RestoredFromAnnotation = "checkpoint.knode.io/restored-from"

// Describe is the restored-from annotation's value for an archive.
func (r *Restores) Describe(archive string) string {
	if sum := KnownDigest(archive); sum != "" {
		return filepath.Base(archive) + "@sha256:" + sum
	}
	return filepath.Base(archive)
}

// RestoreManifest writes the static pod that resumes archive: one container
// with the name, image and command recorded in the archive, restored
// through the restore annotation (so the manifest keeps a normal image).
func RestoreManifest(d *Details, archive, podName, namespace string) ([]byte, error) {
	if d.ContainerName == "" || d.Image == "" {
		return nil, fmt.Errorf("the archive does not record its container's name and image")
	}
	if namespace == "" {
		namespace = firstNonEmpty(d.PodNamespace, "default")
	}
	pod := map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata": map[string]any{
			"name":      podName,
			"namespace": namespace,
			"annotations": map[string]string{
				RestoreAnnotationPrefix + d.ContainerName: archive,
			},
		},
		"spec": map[string]any{
			"containers": []map[string]any{{
				"name":    d.ContainerName,
				"image":   d.Image,
				"command": d.Command,
			}},
		},
	}
	return json.MarshalIndent(pod, "", "  ")
}
