package subpath

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"knode.io/knode/internal/safefs"
)

// world is a temporary root holding vol (the volume a container writes to)
// and host (what no container may reach), with links planted in vol.
type world struct {
	root, vol, host string
	dir             *safefs.Dir
}

func newWorld(t testing.TB) *world {
	t.Helper()
	root := t.TempDir()
	w := &world{root: root, vol: filepath.Join(root, "vol"), host: filepath.Join(root, "host")}
	for _, d := range []string{w.vol, filepath.Join(w.host, "hd"), filepath.Join(w.vol, "sub", "deeper")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(w.vol, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(w.host, "secret"), filepath.Join(w.host, "hd", "keep"), filepath.Join(w.vol, "sub", "file")} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err := safefs.Open(w.vol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	w.dir = d
	return w
}

func (w *world) link(t testing.TB, target, name string) {
	t.Helper()
	if err := os.Symlink(target, filepath.Join(w.vol, name)); err != nil {
		t.Fatal(err)
	}
}

// outside lists everything under root except vol, to compare before and after.
func (w *world) outside(t testing.TB) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(w.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == w.vol {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, p+" "+info.Mode().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// beneath reports whether the open file really lies in the volume, by the
// kernel's name for its descriptor.
func (w *world) beneath(t testing.TB, f *os.File) bool {
	t.Helper()
	real, err := filepath.EvalSymlinks(w.vol)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.Readlink(safefs.ProcPath(f))
	if err != nil {
		t.Fatal(err)
	}
	return got == real || strings.HasPrefix(got, real+"/")
}

func TestResolveRefusesLinksOut(t *testing.T) {
	w := newWorld(t)
	w.link(t, "/", "root")
	w.link(t, w.host, "abs")
	w.link(t, "../host", "up")
	w.link(t, "../../host", "sub/deepup")
	w.link(t, filepath.Join(w.host, "secret"), "file-out")
	w.link(t, "sub/deepup", "chain") // in, then out
	w.link(t, "/nonexistent-knode-test", "dangling-out")
	w.link(t, "../vol/sub", "out-and-back") // leaves the volume, comes back
	before := w.outside(t)
	for _, p := range []string{
		"root", "root/etc", "abs", "abs/secret", "up", "up/hd", "sub/deepup", "sub/deepup/secret",
		"file-out", "chain", "chain/hd", "dangling-out", "dangling-out/x",
		"abs/newdir", "abs/new/deeper", "up/newdir", "sub/deepup/newdir", "out-and-back",
	} {
		f, err := Resolve(w.dir, p)
		if err == nil {
			f.Close()
			t.Errorf("subPath %q: resolved, want refused", p)
			continue
		}
		if !errors.Is(err, ErrOutside) {
			t.Errorf("subPath %q: %v, want ErrOutside", p, err)
		}
	}
	if after := w.outside(t); strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("outside the volume changed:\nbefore %v\nafter  %v", before, after)
	}
	if _, err := os.Stat("/nonexistent-knode-test"); !os.IsNotExist(err) {
		t.Fatalf("a directory was created at the dangling link's target: %v", err)
	}
}

func TestResolveRefusesBadStrings(t *testing.T) {
	w := newWorld(t)
	for p, want := range map[string]string{
		"/etc":          "error SubPath `/etc` must not be an absolute path",
		"..":            "unable to provision SubPath `..`: must not contain '..'",
		"sub/../..":     "unable to provision SubPath `sub/../..`: must not contain '..'",
		"a/../b":        "must not contain '..'",
		"../host/x":     "must not contain '..'",
		"/vol/../../..": "must not be an absolute path",
	} {
		f, err := Resolve(w.dir, p)
		if err == nil {
			f.Close()
			t.Errorf("subPath %q: resolved, want refused", p)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("subPath %q: %v, want %q", p, err, want)
		}
	}
}

func TestResolveFollowsLinksThatStayInside(t *testing.T) {
	w := newWorld(t)
	w.link(t, "sub", "in")
	w.link(t, "../sub", "sub/back")
	w.link(t, "deeper", "sub/d")
	w.link(t, "sub/file", "filelink")
	for p, want := range map[string]string{
		"in":            "sub",
		"sub/back":      "sub",
		"in/back/d":     "sub/deeper",
		"filelink":      "sub/file",
		"sub/file":      "sub/file",
		".":             "",
		"in/new/dirs":   "sub/new/dirs",
		"fresh/a/b":     "fresh/a/b",
		"sub/d/created": "sub/deeper/created",
	} {
		f, err := Resolve(w.dir, p)
		if err != nil {
			t.Errorf("subPath %q: %v", p, err)
			continue
		}
		got, _ := os.Readlink(safefs.ProcPath(f))
		real, _ := filepath.EvalSymlinks(filepath.Join(w.vol, want))
		if got != real || !w.beneath(t, f) {
			t.Errorf("subPath %q opened %s, want %s", p, got, real)
		}
		f.Close()
	}
	// Created levels carry the volume's mode, not the umask's.
	for _, d := range []string{"fresh", "fresh/a", "fresh/a/b", "sub/new", "sub/new/dirs"} {
		st, err := os.Stat(filepath.Join(w.vol, d))
		if err != nil || st.Mode().Perm() != 0o777 {
			t.Errorf("%s: mode %v %v, want 0777", d, st.Mode(), err)
		}
	}
}

func TestMakeDirRefusesLinkOnTheWay(t *testing.T) {
	w := newWorld(t)
	w.link(t, w.host, "etc")
	w.link(t, "missing", "dangling-in")
	before := w.outside(t)
	for _, p := range []string{"etc/newdir", "etc/a/b", "dangling-in", "dangling-in/x"} {
		if f, err := Resolve(w.dir, p); err == nil {
			f.Close()
			t.Errorf("subPath %q resolved", p)
		}
	}
	if after := w.outside(t); strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("outside the volume changed:\nbefore %v\nafter  %v", before, after)
	}
	if _, err := os.Lstat(filepath.Join(w.vol, "missing")); !os.IsNotExist(err) {
		t.Fatalf("a dangling link's target was created: %v", err)
	}
}

func TestResolveRefusesFileAsDirectory(t *testing.T) {
	w := newWorld(t)
	if f, err := Resolve(w.dir, "sub/file/x"); err == nil {
		f.Close()
		t.Fatal("a path through a file resolved")
	}
	if _, err := os.Stat(filepath.Join(w.vol, "sub", "file")); err != nil {
		t.Fatal(err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
}

func mounted(t *testing.T, p string) bool {
	t.Helper()
	mps, err := safefs.MountsUnder(p)
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(p)
	for _, mp := range mps {
		if mp == real {
			return true
		}
	}
	return false
}

// A swap of the subPath for a link after the check changes nothing for the
// bind: it holds the directory that was opened.
func TestBindHoldsTheCheckedObject(t *testing.T) {
	requireRoot(t)
	w := newWorld(t)
	podDir := filepath.Join(w.root, "pod")
	if err := os.Mkdir(podDir, 0o750); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = safefs.UnmountAll(podDir) })
	f, err := Resolve(w.dir, "sub")
	if err != nil {
		t.Fatal(err)
	}
	// The container swaps its directory for a link to the host.
	if err := os.Rename(filepath.Join(w.vol, "sub"), filepath.Join(w.vol, "moved")); err != nil {
		t.Fatal(err)
	}
	w.link(t, w.host, "sub")
	target, err := Bind(podDir, "data", "main", 0, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if target != filepath.Join(podDir, "volume-subpaths", "data", "main", "0") || !mounted(t, target) {
		t.Fatalf("target %s not mounted", target)
	}
	if _, err := os.Stat(filepath.Join(target, "file")); err != nil {
		t.Fatalf("the bind does not hold the checked directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, "secret")); err == nil {
		t.Fatal("the bind followed the swapped-in link")
	}

	// A file subPath gets a file target.
	ff, err := Resolve(w.dir, "moved/file")
	if err != nil {
		t.Fatal(err)
	}
	ftarget, err := Bind(podDir, "data", "main", 1, ff)
	ff.Close()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(ftarget); err != nil || !st.Mode().IsRegular() || !mounted(t, ftarget) {
		t.Fatalf("file target: %v %v", st, err)
	}

	// Binding again replaces the earlier mount instead of stacking.
	f2, err := Resolve(w.dir, "moved/deeper")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Bind(podDir, "data", "main", 0, f2); err != nil {
		t.Fatal(err)
	}
	f2.Close()
	mps, _ := safefs.MountsUnder(podDir)
	if len(mps) != 2 {
		t.Fatalf("mounts after rebinding: %v", mps)
	}

	if err := CleanContainer(podDir, "main"); err != nil {
		t.Fatal(err)
	}
	if mps, _ := safefs.MountsUnder(podDir); len(mps) != 0 {
		t.Fatalf("mounts left after cleaning: %v", mps)
	}
	if _, err := os.Stat(filepath.Join(podDir, "volume-subpaths", "data")); !os.IsNotExist(err) {
		t.Fatalf("targets left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.vol, "moved", "file")); err != nil {
		t.Fatalf("cleaning touched the volume: %v", err)
	}
}

func TestCleanPodLeavesTheBoundDirectory(t *testing.T) {
	requireRoot(t)
	w := newWorld(t)
	podDir := filepath.Join(w.root, "pod")
	if err := os.Mkdir(podDir, 0o750); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = safefs.UnmountAll(podDir) })
	// A bind of a directory outside the pod (a hostPath volume's).
	hd, err := safefs.Open(w.host)
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Close()
	f, err := Resolve(hd, "hd")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Bind(podDir, "host", "main", 0, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before := w.outside(t)
	if err := CleanPod(podDir); err != nil {
		t.Fatal(err)
	}
	after := w.outside(t)
	// Only the pod's own volume-subpaths tree went.
	var kept []string
	for _, e := range before {
		if !strings.HasPrefix(e, filepath.Join(podDir, "volume-subpaths")) {
			kept = append(kept, e)
		}
	}
	if strings.Join(kept, "\n") != strings.Join(after, "\n") {
		t.Fatalf("cleaning changed more than the pod's targets:\nwant %v\ngot  %v", kept, after)
	}
}
