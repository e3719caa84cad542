package checkpoint

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Archive names follow the kubelet:
//
//	checkpoint-<pod>_<namespace>-<container>-<RFC 3339 timestamp>.tar
//
// knode never overwrites an archive: when that name is taken (a second
// checkpoint of the same container within the same second), it appends
// -1, -2, ... before ".tar", taking the first free one atomically.
const (
	archivePrefix = "checkpoint-"
	archiveSuffix = ".tar"
	// tempPrefix marks archives the runtime is still writing; hidden, never
	// listed, and removed at start (left by a crash).
	tempPrefix = ".tmp-"
)

// ArchiveName is the kubelet's name for a checkpoint taken at t.
func ArchiveName(pod, namespace, container string, t time.Time) string {
	return fmt.Sprintf("%s%s_%s-%s-%s%s", archivePrefix, pod, namespace, container, t.Format(time.RFC3339), archiveSuffix)
}

// withSuffix is name with the collision counter n (n = 0 is name itself).
func withSuffix(name string, n int) string {
	if n == 0 {
		return name
	}
	return strings.TrimSuffix(name, archiveSuffix) + "-" + strconv.Itoa(n) + archiveSuffix
}

// nameRE splits a name into pod, the "<namespace>-<container>" part, the
// timestamp and an optional collision counter. Pod names cannot hold "_",
// so the first "_" ends the pod name.
var nameRE = regexp.MustCompile(`^checkpoint-([a-z0-9.-]+)_([a-z0-9-]+)-(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d))(?:-(\d+))?\.tar$`)

// parsedName is what an archive's name tells.
type parsedName struct {
	pod string
	// nsContainer is "<namespace>-<container>": both may hold "-", so the
	// split needs the namespace from elsewhere (xattrs, or known pods).
	nsContainer string
	time        time.Time
	// seq is the collision counter: later archives of the same second are higher.
	seq int
}

func parseName(name string) (parsedName, bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return parsedName{}, false
	}
	t, err := time.Parse(time.RFC3339, m[3])
	if err != nil {
		return parsedName{}, false
	}
	seq := 0
	if m[4] != "" {
		if seq, err = strconv.Atoi(m[4]); err != nil {
			return parsedName{}, false
		}
	}
	return parsedName{pod: m[1], nsContainer: m[2], time: t, seq: seq}, true
}

// ValidArchiveName reports whether name is a plain archive file name: no
// path separators, no dot-dot, the kubelet's form.
func ValidArchiveName(name string) bool {
	if len(name) > 512 || strings.ContainsAny(name, "/\\\x00") || strings.HasPrefix(name, ".") {
		return false
	}
	_, ok := parseName(name)
	return ok
}
