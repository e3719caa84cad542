// Package restore decides which containers start from a checkpoint
// archive, and checks that the archive is one the pod may use: the pod
// workers ask it before they create a container.
package restore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/checkpoint/format"
	"knode.io/knode/internal/podsource"
)

// Annotations that ask for a restore while the manifest keeps its normal image.
const (
	// AnnotationPrefix + <container>: an archive name (in an allowed
	// directory) or path.
	AnnotationPrefix = "checkpoint.knode.io/restore-"
	// FallbackAnnotation "image" starts the container fresh from its image
	// when the archive cannot be restored.
	FallbackAnnotation = "checkpoint.knode.io/restore-fallback"
)

// Error is a restore that cannot happen, with the pod status reason.
type Error struct {
	reason  string
	message string
}

func (e *Error) Error() string { return e.message }

// Reason is the pod status reason (RestoreNotSupported, InvalidCheckpoint, ...).
func (e *Error) Reason() string { return e.reason }

// Selector decides which containers start from a checkpoint archive and
// checks the archives. Only archives directly inside Dirs are ever used, and
// only by pods of the namespace the archive was taken in: an archive holds a
// container's memory, so a pod that could name any archive could read
// another tenant's secrets.
type Selector struct {
	// Dirs are the checkpoints directory and --restore-dirs.
	Dirs []string
	// Runtime is "<name>://<version>", for messages.
	Runtime string
	// AcrossNamespaces lets a pod restore an archive taken in another
	// namespace (--restore-across-namespaces; off by default).
	AcrossNamespaces bool
	// APIPods lets pods from the API server restore at all: the
	// ContainerCheckpoint feature gate. Static pods, which only the node's
	// operator writes, do not depend on it.
	APIPods bool
	// Log gets the real reason of a refusal the pod only sees as
	// CheckpointNotFound; nil: slog.Default().
	Log *slog.Logger
}

// Source returns the archive c should be restored from ("" for none), and
// whether the pod asked to fall back to the image when that fails. The
// image field holding an absolute path, or the restore annotation, asks
// for a restore.
func (r *Selector) Source(pod *v1.Pod, c *v1.Container) (string, bool, error) {
	fallback := pod.Annotations[FallbackAnnotation] == "image"
	ref, fromAnnotation := pod.Annotations[AnnotationPrefix+c.Name]
	switch {
	case fromAnnotation:
	case strings.HasPrefix(c.Image, "/"):
		ref, fallback = c.Image, false // no image to fall back to
	default:
		return "", false, nil
	}
	if !r.APIPods && !podsource.IsStatic(pod) {
		return "", fallback, &Error{reason: "CheckpointNotAllowed", message: fmt.Sprintf(
			"container %s asks to be restored from checkpoint %q, but restoring pods from the API server needs the ContainerCheckpoint feature gate, which is off on this node", c.Name, ref)}
	}
	path, err := r.resolve(ref, pod.Namespace)
	if err != nil {
		return "", fallback, err
	}
	return path, fallback, nil
}

// unavailable is the one answer for an archive that does not exist, lies
// outside the restore directories, is reached through a link that leaves
// them, or belongs to another namespace. The pod's author reads it in the
// pod status: distinct answers would let a pod probe the host's files and
// other tenants' archives. The log says which it was.
func unavailable(ref, namespace string) *Error {
	return &Error{reason: "CheckpointNotFound", message: fmt.Sprintf(
		"checkpoint archive %q is not available to pods of namespace %q: there is no such archive in this node's restore directories, or it was taken in another namespace", ref, namespace)}
}

func (r *Selector) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// resolve finds ref (a name or an absolute path) directly inside an allowed
// directory, checks that it is a checkpoint archive of namespace, and
// returns a path that names the file it checked.
func (r *Selector) resolve(ref, namespace string) (string, error) {
	var candidates []string // directories to look in
	base := ref
	if filepath.IsAbs(ref) {
		clean := filepath.Clean(ref)
		dir := filepath.Dir(clean)
		base = filepath.Base(clean)
		for _, d := range r.Dirs {
			if dir == filepath.Clean(d) {
				candidates = append(candidates, d)
			} else if real, err := filepath.EvalSymlinks(d); err == nil && dir == real {
				candidates = append(candidates, d)
			}
		}
	} else {
		if strings.ContainsAny(ref, "/\\\x00") || ref == "." || ref == ".." || ref == "" {
			return "", &Error{reason: "CheckpointNotAllowed", message: fmt.Sprintf("checkpoint %q: give an archive name or an absolute path", ref)}
		}
		candidates = r.Dirs
	}
	// Dot files are knode's temporaries (archives being written or fetched).
	if base == "" || base == "." || base == ".." || strings.HasPrefix(base, ".") || strings.ContainsRune(base, 0) {
		r.log().Info("restore refused: not an archive name", "ref", ref, "namespace", namespace)
		return "", unavailable(ref, namespace)
	}
	for _, d := range candidates {
		path, f, err := openBeneath(d, base)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			// A link (inside or leaving the directory), a special file, no permission:
			// logged for the operator, the pod sees the same answer as for no file.
			r.log().Warn("restore refused: the archive cannot be opened safely", "ref", ref, "dir", d, "namespace", namespace, "err", err)
			return "", unavailable(ref, namespace)
		}
		det, err := format.ReadDetailsFrom(f)
		f.Close()
		if err != nil {
			return "", &Error{reason: "InvalidCheckpoint", message: fmt.Sprintf("%s is not a checkpoint archive: %v", ref, err)}
		}
		// The namespace comes from spec.dump, which the runtime wrote; an
		// archive that records none is no tenant's, so no pod's.
		if (det.PodNamespace == "" || det.PodNamespace != namespace) && !r.AcrossNamespaces {
			r.log().Warn("restore refused: the archive was taken in another namespace (--restore-across-namespaces allows it)",
				"archive", path, "archiveNamespace", det.PodNamespace, "namespace", namespace)
			return "", unavailable(ref, namespace)
		}
		return path, nil
	}
	r.log().Info("restore refused: no such archive in the restore directories", "ref", ref, "namespace", namespace, "dirs", r.Dirs)
	return "", unavailable(ref, namespace)
}

// errNotRegular is an entry that is not a plain file.
var errNotRegular = errors.New("not a regular file")

// openBeneath opens name, one component, inside dir without following any
// link (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS,
// relative to the opened directory), and returns the path the runtime is
// to be given: dir's real path joined with name, checked to be the very
// file that was opened and not a link. The directories are the operator's
// and root-only, so no one but root can swap the file after the check.
func openBeneath(dir, name string) (string, *os.File, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", nil, fmt.Errorf("restore directory %s: %w", dir, err)
	}
	dfd, err := unix.Open(real, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("open restore directory %s: %w", real, err)
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat2(dfd, name, &unix.OpenHow{
		// O_NONBLOCK: a FIFO planted here must not block the pod worker.
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return "", nil, os.ErrNotExist
		}
		return "", nil, fmt.Errorf("open %s in %s: %w", name, real, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(real, name))
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return "", nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return "", nil, errNotRegular
	}
	path := filepath.Join(real, name)
	var lst unix.Stat_t
	if err := unix.Lstat(path, &lst); err != nil || lst.Dev != st.Dev || lst.Ino != st.Ino || lst.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return "", nil, fmt.Errorf("%s changed while it was checked", path)
	}
	return path, f, nil
}

// CreateFailed explains a runtime's refusal to create a container from an
// archive. containerd 2.4 answers that the "image" cannot be resolved; a
// runtime without checkpoint support answers otherwise.
func (r *Selector) CreateFailed(archive string, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "failed to resolve image") || strings.Contains(msg, "not found") && strings.Contains(msg, archive) ||
		strings.Contains(msg, "Unimplemented") || strings.Contains(msg, "not implemented") {
		return &Error{reason: "RestoreNotSupported", message: fmt.Sprintf(
			"the runtime %s cannot restore a checkpoint through CRI (it answered: %s). Runtimes that can: containerd 2.1–2.3 with "+
				"enable_experimental_restore_via_create = true, and CRI-O with checkpoint/restore enabled (enable_criu_support = true)", r.Runtime, msg)}
	}
	return &Error{reason: "RestoreFailed", message: fmt.Sprintf("restoring from %s failed: %s", archive, msg)}
}

// RestoredFromAnnotation records on a pod which archive (and digest) its
// containers were restored from.
const RestoredFromAnnotation = "checkpoint.knode.io/restored-from"

// Describe is the restored-from annotation's value for an archive.
func (r *Selector) Describe(archive string) string {
	if sum := format.KnownDigest(archive); sum != "" {
		return filepath.Base(archive) + "@sha256:" + sum
	}
	return filepath.Base(archive)
}
