// Package format is the checkpoint archive as a file: its kubelet-style
// name, the labels and digest knode keeps beside it (extended attributes),
// and the metadata read from its content. The archive store, restore
// selection, migration and the CLI all read archives through it.
package format

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
	// TempPrefix marks archives the runtime is still writing; hidden, never
	// listed, and removed at start (left by a crash).
	TempPrefix = ".tmp-"
)

// Name is the kubelet's name for a checkpoint taken at t.
func Name(pod, namespace, container string, t time.Time) string {
	return fmt.Sprintf("%s%s_%s-%s-%s%s", archivePrefix, pod, namespace, container, t.Format(time.RFC3339), archiveSuffix)
}

// WithSuffix is name with the collision counter n (n = 0 is name itself).
func WithSuffix(name string, n int) string {
	if n == 0 {
		return name
	}
	return strings.TrimSuffix(name, archiveSuffix) + "-" + strconv.Itoa(n) + archiveSuffix
}

// nameRE splits a name into pod, the "<namespace>-<container>" part, the
// timestamp and an optional collision counter. Pod names cannot hold "_",
// so the first "_" ends the pod name.
var nameRE = regexp.MustCompile(`^checkpoint-([a-z0-9.-]+)_([a-z0-9-]+)-(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d))(?:-(\d+))?\.tar$`)

// Parsed is what an archive's name tells.
type Parsed struct {
	Pod string
	// NSContainer is "<namespace>-<container>": both may hold "-", so the
	// split needs the namespace from elsewhere (xattrs, or known pods).
	NSContainer string
	Time        time.Time
	// Seq is the collision counter: later archives of the same second are higher.
	Seq int
}

// ParseName splits an archive name into what it tells.
func ParseName(name string) (Parsed, bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return Parsed{}, false
	}
	t, err := time.Parse(time.RFC3339, m[3])
	if err != nil {
		return Parsed{}, false
	}
	seq := 0
	if m[4] != "" {
		if seq, err = strconv.Atoi(m[4]); err != nil {
			return Parsed{}, false
		}
	}
	return Parsed{Pod: m[1], NSContainer: m[2], Time: t, Seq: seq}, true
}

// ValidName reports whether name is a plain archive file name: no
// path separators, no dot-dot, the kubelet's form.
func ValidName(name string) bool {
	if len(name) > 512 || strings.ContainsAny(name, "/\\\x00") || strings.HasPrefix(name, ".") {
		return false
	}
	_, ok := ParseName(name)
	return ok
}
