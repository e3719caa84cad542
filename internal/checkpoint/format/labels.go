package format

import (
	"golang.org/x/sys/unix"
)

// Archive names cannot say where a namespace ends and a container name
// begins (both may hold "-"), so knode records them as extended attributes.
const (
	xattrNamespace = "user.knode.namespace"
	xattrPod       = "user.knode.pod"
	xattrContainer = "user.knode.container"
)

// xattrSHA256 caches an archive's digest, computed at its first download.
const xattrSHA256 = "user.knode.sha256"

// SetLabels records whose archive path is. Best effort: a filesystem
// without user xattrs still gets the archive, and listing falls back to
// the name.
func SetLabels(path, namespace, pod, container string) {
	_ = unix.Setxattr(path, xattrNamespace, []byte(namespace), 0)
	_ = unix.Setxattr(path, xattrPod, []byte(pod), 0)
	_ = unix.Setxattr(path, xattrContainer, []byte(container), 0)
}

// Labels returns the namespace and container SetLabels recorded ("" when
// none).
func Labels(path string) (namespace, container string) {
	return getLabel(path, xattrNamespace), getLabel(path, xattrContainer)
}

func getLabel(path, name string) string {
	buf := make([]byte, 256)
	n, err := unix.Getxattr(path, name, buf)
	if err != nil || n <= 0 {
		return ""
	}
	return string(buf[:n])
}

// KnownDigest is an archive's SHA-256 if knode has computed or verified it
// before (kept as an extended attribute), else "".
func KnownDigest(path string) string {
	if sum := getLabel(path, xattrSHA256); len(sum) == 64 {
		return sum
	}
	return ""
}

// RecordDigest keeps a verified SHA-256 with the archive.
func RecordDigest(path, sum string) {
	_ = unix.Setxattr(path, xattrSHA256, []byte(sum), 0)
}
