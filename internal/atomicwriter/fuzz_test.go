package atomicwriter

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzWriter plants random trees of directories, files and links (to the
// host outside, to inside the volume, loops) in a volume that was written
// once, then writes a random set of keys. Whatever was planted, nothing
// outside the volume changes and what a container reads through the links
// is exactly what was asked.
func FuzzWriter(f *testing.F) {
	f.Add([]byte{0, 0, 2, 1, 1, 3, 4, 2, 0}, []byte{0, 'x', 0, 3, 'y', 1})
	f.Add([]byte{2, 0, 0, 3, 2, 0, 4, 9, 1, 6, 5, 2}, []byte{2, 'z', 2, 4, 'w', 3, 5, 'v', 0})
	f.Add([]byte{1, 4, 1, 5, 4, 0, 7, 3, 1}, []byte{1, 'q', 1})
	f.Add([]byte{0, 1, 0, 0, 7, 2, 8, 6, 2, 5, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, plant, keys []byte) {
		root, vol, host := volume(t)
		if _, err := write(t, vol, sample); err != nil {
			t.Fatal(err)
		}
		hostBefore, rootBefore := snapshot(t, host), entries(t, root)
		plantTree(t, vol, host, plant)
		files := keySet(keys)
		wrote, err := write(t, vol, files)
		if got := snapshot(t, host); !maps.Equal(got, hostBefore) {
			t.Fatalf("the host outside the volume changed:\n%v\nwas\n%v", got, hostBefore)
		}
		if got := entries(t, root); !slices.Equal(got, rootBefore) {
			t.Fatalf("the volume's parent changed: %v, was %v", got, rootBefore)
		}
		if err != nil {
			t.Fatalf("write: %v", err)
		}
		checkVolume(t, vol, files)
		if wrote, err = write(t, vol, files); err != nil || wrote {
			t.Fatalf("the repaired volume was written again: %v %v", wrote, err)
		}
	})
}

// plantNames are the names planted entries get: the writer's own, the keys'
// and others.
var plantNames = []string{DataLink, tmpLink, "a", "dir", "exec.sh", "c", "..2020_01_01_00_00_00.x", "junk", "sub", "b"}

// plantTree interprets spec three bytes at a time: what to plant, its name
// and where (the volume, the current content directory, or a directory
// planted before). An entry that exists is replaced.
func plantTree(t *testing.T, vol, host string, spec []byte) {
	t.Helper()
	dirs := []string{vol}
	if ts, err := os.Readlink(filepath.Join(vol, DataLink)); err == nil {
		dirs = append(dirs, filepath.Join(vol, ts), filepath.Join(vol, ts, "dir"))
	}
	for i := 0; i+2 < len(spec) && i < 3*32; i += 3 {
		parent := dirs[int(spec[i+2])%len(dirs)]
		if fi, err := os.Lstat(parent); err != nil || !fi.IsDir() {
			continue // replaced by an earlier step
		}
		p := filepath.Join(parent, plantNames[int(spec[i+1])%len(plantNames)])
		rel, _ := filepath.Rel(filepath.Dir(p), host) // a relative way out
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		var err error
		switch spec[i] % 10 {
		case 0:
			if err = os.Mkdir(p, 0o755); err == nil {
				dirs = append(dirs, p)
			}
		case 1:
			err = os.WriteFile(p, []byte("planted"), 0o644)
		case 2:
			err = os.Symlink(host, p)
		case 3:
			err = os.Symlink(rel, p)
		case 4:
			err = os.Symlink(filepath.Join(host, "secret"), p)
		case 5:
			err = os.Symlink(filepath.Join(rel, "etc"), p)
		case 6: // inside the volume
			err = os.Symlink(plantNames[int(spec[i+1]/10)%len(plantNames)], p)
		case 7: // a loop
			err = os.Symlink(filepath.Base(p), p)
		case 8: // a timestamp-like name that leads out
			err = os.Symlink("..2020_01_01_00_00_00.x", p)
		case 9: // absolute, into the volume
			err = os.Symlink(filepath.Join(vol, DataLink), p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// keyPaths can all exist together; a key set is any subset of them.
var keyPaths = []string{"a", "b", "c/x", "c/y/z", "c/y/w", "dir/b", "junk", "sub/deep/f"}

// keySet interprets spec three bytes at a time: a path, a content byte, a mode.
func keySet(spec []byte) map[string]File {
	modes := []os.FileMode{0o644, 0o600, 0o400, 0o755, 0o440, 0o777, 0o000, 0o640}
	files := map[string]File{}
	for i := 0; i+2 < len(spec); i += 3 {
		files[keyPaths[int(spec[i])%len(keyPaths)]] = File{Data: []byte{spec[i+1], 'k'}, Mode: modes[int(spec[i+2])%len(modes)]}
	}
	return files
}
