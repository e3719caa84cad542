package restore

import (
	"path/filepath"
	"strings"
	"testing"

	"knode.io/knode/internal/checkpoint/format"
)

// FuzzRestoreSource: whatever a pod names, the archive handed to the
// runtime is a regular file directly inside a restore directory, of the
// pod's namespace; every refusal of a missing or forbidden archive reads
// the same.
func FuzzRestoreSource(f *testing.F) {
	for _, s := range []string{"a.tar", "b.tar", "escape.tar", "sub/secret.tar", "../outside/secret.tar", "/etc/passwd", ".", "..", "", "\x00", "fifo.tar"} {
		f.Add(s, false)
	}
	w := newRestoreWorldAt(f, f.TempDir())
	w.plantTraps(f)
	real, _ := filepath.EvalSymlinks(w.dir)
	f.Fuzz(func(t *testing.T, ref string, absolute bool) {
		if absolute {
			ref = filepath.Join(w.dir, ref)
		}
		pod, c := restorePod("team-a", ref, false)
		got, _, err := w.r.Source(pod, c)
		if err == nil {
			if filepath.Dir(got) != real || strings.HasPrefix(filepath.Base(got), ".") {
				t.Fatalf("%q resolved to %q, outside %s", ref, got, real)
			}
			d, derr := format.ReadDetails(got)
			if derr != nil || d.PodNamespace != "team-a" {
				t.Fatalf("%q resolved to %q of namespace %v %v", ref, got, d, derr)
			}
			return
		}
		if reasonOf(err) == "CheckpointNotFound" && err.Error() != unavailable(ref, "team-a").Error() {
			t.Fatalf("%q: refusal %q is not the common one", ref, err)
		}
	})
}
