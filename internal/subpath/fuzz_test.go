package subpath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"knode.io/knode/internal/safefs"
)

// FuzzSubPath builds a random tree of directories, files and links in a
// volume (links that stay, that leave absolutely or by "..", that chain,
// that dangle) and resolves a random subPath in it: nothing outside the
// volume may change, and an accepted result's descriptor must lie beneath
// the volume by the kernel's own account.
func FuzzSubPath(f *testing.F) {
	f.Add([]byte{1, 0, 0, 2, 1, 1}, "a/x")
	f.Add([]byte{2, 0, 1}, "a/newdir")
	f.Add([]byte{2, 0, 2, 0, 1, 0}, "a/b/c")
	f.Add([]byte{0, 0, 0, 2, 5, 5, 2, 6, 3}, "a/b/../c")
	f.Add([]byte{2, 1, 4, 2, 2, 8}, "b/c/d")
	f.Add([]byte{2, 3, 10}, "d")
	f.Add([]byte{0, 0, 0, 3, 4, 0, 2, 7, 11}, "a/f/x")
	names := []string{"a", "b", "c", "d", "a/b", "a/c", "b/c", "a/b/c"}
	f.Fuzz(func(t *testing.T, tree []byte, sub string) {
		if len(tree) > 60 || len(sub) > 200 || strings.ContainsRune(sub, 0) {
			return
		}
		w := newWorld(t)
		targets := []string{
			"/", w.host, "../host", "..", "../..", "a", "b/c", "../b", filepath.Join(w.vol, "a"),
			"/etc", ".", "c/../..", "x", "../vol/a", "sub", "../../../..", w.host + "/secret",
		}
		for i := 0; i+2 < len(tree); i += 3 {
			name := names[int(tree[i+1])%len(names)]
			p := filepath.Join(w.vol, name)
			switch tree[i] % 4 {
			case 0, 1:
				_ = os.Mkdir(p, 0o755)
			case 2:
				_ = os.Symlink(targets[int(tree[i+2])%len(targets)], p)
			case 3:
				_ = os.WriteFile(p, nil, 0o644)
			}
		}
		before := w.outside(t)
		etc, _ := os.ReadDir("/etc")
		res, err := Resolve(w.dir, sub)
		if err == nil {
			if !w.beneath(t, res) {
				got, _ := os.Readlink(safefs.ProcPath(res))
				t.Errorf("subPath %q resolved to %s, outside the volume", sub, got)
			}
			res.Close()
		}
		if after := w.outside(t); strings.Join(before, "\n") != strings.Join(after, "\n") {
			t.Fatalf("subPath %q changed the world outside the volume:\nbefore %v\nafter  %v", sub, before, after)
		}
		if etc2, _ := os.ReadDir("/etc"); len(etc2) != len(etc) {
			t.Fatalf("subPath %q changed /etc", sub)
		}
	})
}
