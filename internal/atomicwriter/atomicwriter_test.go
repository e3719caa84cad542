package atomicwriter

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"knode.io/knode/internal/safefs"
)

// volume makes root/vol, the volume, beside root/host, which stands for the
// host's files a container must never reach through the writer.
func volume(t testing.TB) (root, vol, host string) {
	t.Helper()
	root = t.TempDir()
	vol, host = filepath.Join(root, "vol"), filepath.Join(root, "host")
	for _, d := range []string{vol, filepath.Join(host, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{"secret": "host secret", "etc/passwd": "root:x:0:0"} {
		if err := os.WriteFile(filepath.Join(host, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root, vol, host
}

// snapshot describes every entry below dir (type, mode, content or link
// target), without following links.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			desc += " " + string(data)
		}
		out[strings.TrimPrefix(p, dir)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func write(t testing.TB, vol string, files map[string]File) (bool, error) {
	t.Helper()
	d, err := safefs.Open(vol)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return Write(d, files, time.Now())
}

// checkVolume asserts that vol holds exactly files in the writer's layout.
func checkVolume(t testing.TB, vol string, files map[string]File) {
	t.Helper()
	ts, err := os.Readlink(filepath.Join(vol, DataLink))
	if err != nil || !isTimestampName(ts) {
		t.Fatalf("..data = %q, %v", ts, err)
	}
	tops := map[string]bool{}
	for p := range files {
		tops[strings.Split(filepath.Clean(p), "/")[0]] = true
	}
	want := []string{DataLink, ts}
	for top := range tops {
		want = append(want, top)
		if target, err := os.Readlink(filepath.Join(vol, top)); err != nil || target != DataLink+"/"+top {
			t.Fatalf("top-level %s -> %q, %v; want the link into ..data", top, target, err)
		}
	}
	entries, err := os.ReadDir(vol)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if slices.Sort(want); !slices.Equal(got, want) {
		t.Fatalf("volume entries %q, want %q", got, want)
	}
	// The content directory holds regular files and directories only.
	tree := snapshot(t, filepath.Join(vol, ts))
	wantTree := 1 // the directory itself
	dirs := map[string]bool{}
	for p, f := range files {
		p = filepath.Clean(p)
		desc, ok := tree["/"+p]
		if want := f.Mode.String() + " " + string(f.Data); !ok || desc != want {
			t.Fatalf("%s in the content directory: %q, want %q", p, desc, want)
		}
		wantTree++
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
		// What a container reads, through the links.
		data, err := os.ReadFile(filepath.Join(vol, p))
		if err != nil || string(data) != string(f.Data) {
			t.Fatalf("read %s: %q, %v; want %q", p, data, err, f.Data)
		}
		fi, err := os.Stat(filepath.Join(vol, p))
		if err != nil || fi.Mode().Perm() != f.Mode {
			t.Fatalf("stat %s: %v, %v; want mode %v", p, fi.Mode(), err, f.Mode)
		}
	}
	for d := range dirs {
		if desc := tree["/"+d]; desc != "drwxr-xr-x" {
			t.Fatalf("directory %s: %q", d, desc)
		}
	}
	if len(tree) != wantTree+len(dirs) || tree[""] != "drwxr-xr-x" {
		t.Fatalf("content directory holds %v", tree)
	}
}

var sample = map[string]File{
	"a":         {Data: []byte("1"), Mode: 0o644},
	"dir/b":     {Data: []byte("2"), Mode: 0o600},
	"dir/sub/c": {Data: []byte("3"), Mode: 0o440},
	"exec.sh":   {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
	"dir/./d":   {Data: []byte("4"), Mode: 0o400},
}

func TestWriteLayoutAndModes(t *testing.T) {
	_, vol, _ := volume(t)
	wrote, err := write(t, vol, sample)
	if err != nil || !wrote {
		t.Fatalf("first write: %v %v", wrote, err)
	}
	checkVolume(t, vol, sample)
	first, _ := os.Readlink(filepath.Join(vol, DataLink))
	if wrote, err := write(t, vol, sample); err != nil || wrote {
		t.Fatalf("unchanged content was written again: %v %v", wrote, err)
	}
	// A changed value, a changed mode, a removed key, a new nested key.
	next := maps.Clone(sample)
	next["a"] = File{Data: []byte("one"), Mode: 0o644}
	next["exec.sh"] = File{Data: []byte("#!/bin/sh\n"), Mode: 0o700}
	delete(next, "dir/b")
	delete(next, "dir/sub/c")
	delete(next, "dir/./d")
	next["new/deep/e"] = File{Data: []byte("5"), Mode: 0o644}
	if wrote, err := write(t, vol, next); err != nil || !wrote {
		t.Fatalf("changed content: %v %v", wrote, err)
	}
	checkVolume(t, vol, next)
	if _, err := os.Lstat(filepath.Join(vol, first)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the previous content directory is still there: %v", err)
	}
	// An empty object leaves an empty volume.
	if _, err := write(t, vol, nil); err != nil {
		t.Fatal(err)
	}
	checkVolume(t, vol, nil)
}

func TestWriteRefusesBadPaths(t *testing.T) {
	for _, p := range []string{"", "/etc/passwd", "../x", "a/../../x", "..data", "..x/y", ".", "a/./..", strings.Repeat("n", 256)} {
		_, vol, _ := volume(t)
		if _, err := write(t, vol, map[string]File{p: {Data: []byte("x"), Mode: 0o644}}); err == nil {
			t.Fatalf("path %q accepted", p)
		}
		if names, _ := os.ReadDir(vol); len(names) != 0 {
			t.Fatalf("path %q: the volume was written: %v", p, names)
		}
	}
	for _, set := range [][]string{{"a", "a/b"}, {"a", "./a"}} {
		_, vol, _ := volume(t)
		files := map[string]File{}
		for _, p := range set {
			files[p] = File{Data: []byte("x"), Mode: 0o644}
		}
		if _, err := write(t, vol, files); err == nil {
			t.Fatalf("conflicting paths %q accepted", set)
		}
	}
}

// TestWriteRepairsPlantedState plants, between two writes, what a container
// that could write to its volume (or a compromised one) might leave there.
// After the next write the host outside is untouched and the volume holds
// exactly the asked content.
func TestWriteRepairsPlantedState(t *testing.T) {
	tsOf := func(vol string) string { ts, _ := os.Readlink(filepath.Join(vol, DataLink)); return ts }
	mustDo := func(t *testing.T, errs ...error) {
		t.Helper()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		plant func(t *testing.T, vol, host string)
	}{
		{"..data points outside (absolute)", func(t *testing.T, vol, host string) {
			mustDo(t, os.Remove(filepath.Join(vol, DataLink)), os.Symlink(host, filepath.Join(vol, DataLink)))
		}},
		{"..data points outside (relative)", func(t *testing.T, vol, host string) {
			mustDo(t, os.Remove(filepath.Join(vol, DataLink)), os.Symlink("../host", filepath.Join(vol, DataLink)))
		}},
		{"..data points to a timestamp-like name outside", func(t *testing.T, vol, host string) {
			mustDo(t, os.Symlink(host, filepath.Join(vol, "..2020_01_01_00_00_00.x")),
				os.Remove(filepath.Join(vol, DataLink)), os.Symlink("..2020_01_01_00_00_00.x", filepath.Join(vol, DataLink)))
		}},
		{"..data is a directory", func(t *testing.T, vol, host string) {
			mustDo(t, os.Remove(filepath.Join(vol, DataLink)), os.Mkdir(filepath.Join(vol, DataLink), 0o755),
				os.Symlink(host, filepath.Join(vol, DataLink, "a")), os.Symlink(host, filepath.Join(vol, DataLink, "dir")))
		}},
		{"the timestamped dir replaced by a link outside", func(t *testing.T, vol, host string) {
			ts := filepath.Join(vol, tsOf(vol))
			mustDo(t, os.RemoveAll(ts), os.Symlink(host, ts))
		}},
		{"the timestamped dir replaced by a relative link outside", func(t *testing.T, vol, host string) {
			ts := filepath.Join(vol, tsOf(vol))
			mustDo(t, os.RemoveAll(ts), os.Symlink("../host", ts))
		}},
		{"a key replaced by a link to a host file", func(t *testing.T, vol, host string) {
			mustDo(t, os.Remove(filepath.Join(vol, "a")), os.Symlink(filepath.Join(host, "secret"), filepath.Join(vol, "a")))
		}},
		{"a key's file in the content dir replaced by a link to a host file", func(t *testing.T, vol, host string) {
			p := filepath.Join(vol, tsOf(vol), "a")
			mustDo(t, os.Remove(p), os.Symlink(filepath.Join(host, "secret"), p))
		}},
		{"a nested item's directory replaced by a link outside", func(t *testing.T, vol, host string) {
			p := filepath.Join(vol, tsOf(vol), "dir", "sub")
			mustDo(t, os.RemoveAll(p), os.Symlink(filepath.Join(host, "etc"), p))
		}},
		{"a top-level directory link replaced by a link outside", func(t *testing.T, vol, host string) {
			mustDo(t, os.Remove(filepath.Join(vol, "dir")), os.Symlink(host, filepath.Join(vol, "dir")))
		}},
		{"a file replaced by a directory", func(t *testing.T, vol, host string) {
			p := filepath.Join(vol, "a")
			mustDo(t, os.Remove(p), os.Mkdir(p, 0o755), os.Symlink(host, filepath.Join(p, "out")))
		}},
		{"a file in the content dir replaced by a directory", func(t *testing.T, vol, host string) {
			p := filepath.Join(vol, tsOf(vol), "exec.sh")
			mustDo(t, os.Remove(p), os.Mkdir(p, 0o755))
		}},
		{"a file's content and mode changed", func(t *testing.T, vol, host string) {
			p := filepath.Join(vol, tsOf(vol), "a")
			mustDo(t, os.WriteFile(p, []byte("changed"), 0o644), os.Chmod(p, 0o666))
		}},
		{"junk entries", func(t *testing.T, vol, host string) {
			mustDo(t, os.WriteFile(filepath.Join(vol, "junk"), []byte("x"), 0o644),
				os.Symlink(host, filepath.Join(vol, "out")),
				os.Symlink("../host/secret", filepath.Join(vol, "..junk")),
				os.Mkdir(filepath.Join(vol, "..2021_01_01_00_00_00.y"), 0o755),
				os.Symlink(host, filepath.Join(vol, "..2021_01_01_00_00_00.y", "escape")),
				os.Symlink(host, filepath.Join(vol, tsOf(vol), "extra")),
				unix.Mkfifo(filepath.Join(vol, "fifo"), 0o644))
		}},
		{"..data_tmp planted as a directory and as a link", func(t *testing.T, vol, host string) {
			mustDo(t, os.Mkdir(filepath.Join(vol, tmpLink), 0o755),
				os.Symlink(host, filepath.Join(vol, tmpLink, "x")))
		}},
		{"..data_tmp planted as a link outside", func(t *testing.T, vol, host string) {
			mustDo(t, os.Symlink(host, filepath.Join(vol, tmpLink)))
		}},
		{"a link loop", func(t *testing.T, vol, host string) {
			mustDo(t, os.Remove(filepath.Join(vol, DataLink)), os.Symlink(DataLink, filepath.Join(vol, DataLink)),
				os.Remove(filepath.Join(vol, "a")), os.Symlink("a", filepath.Join(vol, "a")))
		}},
		{"the whole volume emptied", func(t *testing.T, vol, host string) {
			entries, _ := os.ReadDir(vol)
			for _, e := range entries {
				mustDo(t, os.RemoveAll(filepath.Join(vol, e.Name())))
			}
		}},
	}
	for _, tc := range cases {
		for _, change := range []bool{false, true} {
			name := tc.name
			if change {
				name += ", then new content"
			}
			t.Run(name, func(t *testing.T) {
				root, vol, host := volume(t)
				if _, err := write(t, vol, sample); err != nil {
					t.Fatal(err)
				}
				hostBefore, rootBefore := snapshot(t, host), entries(t, root)
				tc.plant(t, vol, host)
				files := sample
				if change {
					files = maps.Clone(sample)
					files["a"] = File{Data: []byte("changed by the object"), Mode: 0o640}
					delete(files, "dir/sub/c")
				}
				wrote, err := write(t, vol, files)
				if err != nil || !wrote {
					t.Fatalf("write after planting: %v %v", wrote, err)
				}
				if got := snapshot(t, host); !maps.Equal(got, hostBefore) {
					t.Fatalf("the host outside the volume changed:\n%v\nwas\n%v", got, hostBefore)
				}
				if got := entries(t, root); !slices.Equal(got, rootBefore) {
					t.Fatalf("the volume's parent changed: %v, was %v", got, rootBefore)
				}
				checkVolume(t, vol, files)
				if wrote, err := write(t, vol, files); err != nil || wrote {
					t.Fatalf("the repaired volume was written again: %v %v", wrote, err)
				}
			})
		}
	}
}

func entries(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestIsTimestampName(t *testing.T) {
	for name, want := range map[string]bool{
		"..2026_11_29_23_11_57.k3j9x":   true,
		"..2026_11_29_23_11_57.":        false,
		"..2026_11_29_23_11_57.a/b":     false,
		"..2026_11_29_23_11_57.a.b":     false,
		"../host":                       false,
		"/host":                         false,
		"..data":                        false,
		"2026_11_29_23_11_57.k3j9x":     false,
		"..2026_11_29_23_11_57.x/../..": false,
	} {
		if got := isTimestampName(name); got != want {
			t.Errorf("isTimestampName(%q) = %v, want %v", name, got, want)
		}
	}
}
