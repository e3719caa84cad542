package checkpoint

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

// setLabels is best effort: a filesystem without user xattrs still gets
// the archive, and listing falls back to the name.
func setLabels(path string, t Target) {
	_ = unix.Setxattr(path, xattrNamespace, []byte(t.Namespace), 0)
	_ = unix.Setxattr(path, xattrPod, []byte(t.Pod), 0)
	_ = unix.Setxattr(path, xattrContainer, []byte(t.Container), 0)
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
