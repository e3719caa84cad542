// Package atomicwriter publishes the files of an API-object volume
// (ConfigMap, Secret, projected, downwardAPI) the way the kubelet's atomic
// writer lays them out, so that a reader in a container never sees half an
// update:
//
//	..2026_11_29_23_11_57.k3j9x/   the content, a new directory per change
//	..data -> ..2026_11_29_23_11_57.k3j9x
//	key    -> ..data/key            one link per top-level entry
//
// The volume is a directory that containers mount, so nothing found in it is
// trusted: the writer works only through a safefs.Dir (openat2 beneath the
// volume, *at calls on final names), never follows a link it finds, and
// never removes anything but the entry itself. Every write first checks
// that the volume holds exactly what was asked, in exactly this layout;
// anything else (..data pointing elsewhere, a timestamped directory
// replaced by a link, a key replaced by a file or a link, junk entries) is
// rewritten from scratch inside the volume.
package atomicwriter

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"knode.io/knode/internal/safefs"
)

// File is one file of a volume: its content and its permission bits.
type File struct {
	Data []byte
	Mode os.FileMode
}

const (
	// DataLink is the link to the current timestamped directory.
	DataLink = "..data"
	tmpLink  = "..data_tmp"
	// dirMode is the mode of the timestamped directory and of the
	// directories an item path creates, the kubelet's.
	dirMode os.FileMode = 0o755
	// maxPath and maxName are the kubelet's limits on a file's path.
	maxPath = 4096
	maxName = 255
)

// Write makes the volume d hold exactly files (relative path → content and
// mode) and reports whether it had to write anything. An unchanged volume
// is left alone, so readers keep the directory they hold open.
func Write(d *safefs.Dir, files map[string]File, now time.Time) (bool, error) {
	want, err := plan(files)
	if err != nil {
		return false, err
	}
	if current(d, want) {
		return false, nil
	}
	ts, err := newTimestampDir(d, now)
	if err != nil {
		return false, err
	}
	if err := fill(d, ts, want); err != nil {
		_ = d.RemoveAll(ts)
		return false, err
	}
	// The new content becomes visible in one rename of a link over ..data.
	if err := d.RemoveAll(tmpLink); err != nil {
		return false, fmt.Errorf("clear %s: %w", tmpLink, err)
	}
	if err := d.Symlink(ts, tmpLink); err != nil {
		return false, err
	}
	if fi, err := d.Lstat(DataLink); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		// Not knode's link: a rename cannot replace a directory with a link.
		if err := d.RemoveAll(DataLink); err != nil {
			return false, fmt.Errorf("clear %s: %w", DataLink, err)
		}
	}
	if err := d.Rename(tmpLink, DataLink); err != nil {
		return false, err
	}
	var errs []error
	for _, top := range slices.Sorted(maps.Keys(want.tops)) {
		if err := ensureTopLink(d, top); err != nil {
			errs = append(errs, err)
		}
	}
	// Everything else goes: the previous timestamped directory, keys gone
	// from the object, and whatever was planted. RemoveAll removes links
	// themselves and stops at mount points.
	names, err := d.ReadDirNames(".")
	if err != nil {
		return true, errors.Join(append(errs, err)...)
	}
	for _, name := range names {
		if name == DataLink || name == ts || want.tops[name] {
			continue
		}
		if err := d.RemoveAll(name); err != nil {
			errs = append(errs, fmt.Errorf("remove stale %s: %w", name, err))
		}
	}
	return true, errors.Join(errs...)
}

// Check validates the paths of files as Write does, so a caller can refuse
// a volume before preparing its directory.
func Check(files map[string]File) error {
	_, err := plan(files)
	return err
}

// layout is what a volume must hold: its files by cleaned path, the
// directories their paths need, and the top-level names.
type layout struct {
	files map[string]File
	dirs  map[string]bool
	tops  map[string]bool
}

// plan validates the paths as the kubelet does (relative, no "..", not
// starting with "..", which is the writer's own namespace, within the length
// limits) and refuses two paths that cannot both exist.
func plan(files map[string]File) (layout, error) {
	l := layout{files: map[string]File{}, dirs: map[string]bool{}, tops: map[string]bool{}}
	given := map[string]string{} // cleaned path → as given, for messages
	for _, p := range slices.Sorted(maps.Keys(files)) {
		clean, err := safefs.Clean(p)
		if err != nil {
			return l, fmt.Errorf("file path %w", err)
		}
		if clean == "." {
			return l, fmt.Errorf("file path %q names the volume itself", p)
		}
		if len(clean) > maxPath {
			return l, fmt.Errorf("file path %q is longer than %d", p, maxPath)
		}
		parts := strings.Split(clean, "/")
		if strings.HasPrefix(parts[0], "..") {
			return l, fmt.Errorf("file path %q must not start with \"..\"", p)
		}
		for _, part := range parts {
			if len(part) > maxName {
				return l, fmt.Errorf("file path %q has a component longer than %d", p, maxName)
			}
		}
		if first, dup := given[clean]; dup {
			return l, fmt.Errorf("file paths %q and %q name the same file", first, p)
		}
		given[clean] = p
		if files[p].Mode&^os.ModePerm != 0 {
			return l, fmt.Errorf("file %q: mode %o has more than permission bits", p, files[p].Mode)
		}
		l.files[clean] = files[p]
		l.tops[parts[0]] = true
		for i := 1; i < len(parts); i++ {
			l.dirs[strings.Join(parts[:i], "/")] = true
		}
	}
	for p := range l.files {
		if l.dirs[p] {
			return l, fmt.Errorf("file path %q is also the directory of another file", given[p])
		}
	}
	return l, nil
}

// current reports whether d holds exactly want in knode's layout. Any
// doubt (an error, an unexpected entry or type, a link where none belongs)
// answers false, and the volume is rewritten.
func current(d *safefs.Dir, want layout) bool {
	ts, err := d.Readlink(DataLink)
	if err != nil || !isTimestampName(ts) {
		return false
	}
	names, err := d.ReadDirNames(".")
	if err != nil || len(names) != len(want.tops)+2 {
		return false
	}
	for _, name := range names {
		switch {
		case name == DataLink, name == ts:
		case want.tops[name]:
			if target, err := d.Readlink(name); err != nil || target != DataLink+"/"+name {
				return false
			}
		default:
			return false
		}
	}
	tsDir, err := d.OpenDir(ts, safefs.NoSymlinks)
	if err != nil {
		return false
	}
	defer tsDir.Close()
	return treeMatches(tsDir, ".", want)
}

// treeMatches compares the directory rel beneath the timestamped directory
// with want: the same names, the same types, modes and contents.
func treeMatches(ts *safefs.Dir, rel string, want layout) bool {
	var fi os.FileInfo
	var err error
	if rel == "." {
		fi, err = statDir(ts)
	} else {
		fi, err = ts.Lstat(rel)
	}
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != dirMode {
		return false
	}
	names, err := ts.ReadDirNames(rel)
	if err != nil {
		return false
	}
	expected := 0
	for p := range want.files {
		if path.Dir(p) == rel {
			expected++
		}
	}
	for p := range want.dirs {
		if path.Dir(p) == rel {
			expected++
		}
	}
	if len(names) != expected {
		return false
	}
	for _, name := range names {
		p := path.Join(rel, name)
		switch f, isFile := want.files[p]; {
		case isFile:
			data, mode, err := ts.ReadFile(p, int64(len(f.Data)))
			if err != nil || mode.Perm() != f.Mode || string(data) != string(f.Data) {
				return false
			}
		case want.dirs[p]:
			if !treeMatches(ts, p, want) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// statDir describes the opened directory itself.
func statDir(d *safefs.Dir) (os.FileInfo, error) {
	f, err := d.OpenPath(".", safefs.NoSymlinks)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// timestampLayout names the content directories as the kubelet does
// (..2006_01_02_15_04_05.<random>).
const timestampLayout = "..2006_01_02_15_04_05."

// isTimestampName reports whether a link target names a timestamped
// directory of this volume: a single component of the writer's own form,
// never a path that could lead elsewhere.
func isTimestampName(name string) bool {
	stamp, suffix, ok := strings.Cut(strings.TrimPrefix(name, ".."), ".")
	if !ok || !strings.HasPrefix(name, "..") || suffix == "" || strings.ContainsAny(suffix, "/.") {
		return false
	}
	_, err := time.Parse(timestampLayout[2:len(timestampLayout)-1], stamp)
	return err == nil
}

// newTimestampDir creates a fresh content directory. It must not exist
// before: a directory someone else created could hold anything.
func newTimestampDir(d *safefs.Dir, now time.Time) (string, error) {
	for range 10 {
		name := now.UTC().Format(timestampLayout) + strconv.FormatUint(rand.Uint64(), 36)
		// mkdirat on the volume's descriptor, one component: it never
		// follows a link and fails on anything already there.
		err := unix.Mkdirat(d.Fd(), name, uint32(dirMode))
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", &os.PathError{Op: "mkdir", Path: d.Name() + "/" + name, Err: err}
		}
		// The umask must not narrow what non-root readers need.
		if err := d.Chmod(name, dirMode); err != nil {
			return "", err
		}
		return name, nil
	}
	return "", fmt.Errorf("no free name for a timestamped directory in %s", d.Name())
}

// fill writes want into the new timestamped directory ts.
func fill(d *safefs.Dir, ts string, want layout) error {
	tsDir, err := d.OpenDir(ts, safefs.NoSymlinks)
	if err != nil {
		return err
	}
	defer tsDir.Close()
	for _, dir := range slices.Sorted(maps.Keys(want.dirs)) {
		sub, err := tsDir.MkdirAll(dir, dirMode)
		if err != nil {
			return err
		}
		sub.Close()
		if err := tsDir.Chmod(dir, dirMode); err != nil {
			return err
		}
	}
	for _, p := range slices.Sorted(maps.Keys(want.files)) {
		f := want.files[p]
		if err := tsDir.WriteFile(p, f.Data, f.Mode); err != nil {
			return err
		}
	}
	return nil
}

// ensureTopLink makes the top-level entry name the link ..data/name,
// replacing whatever else is there without following it.
func ensureTopLink(d *safefs.Dir, name string) error {
	target := DataLink + "/" + name
	if got, err := d.Readlink(name); err == nil && got == target {
		return nil
	}
	if err := d.RemoveAll(name); err != nil {
		return fmt.Errorf("replace %s: %w", name, err)
	}
	return d.Symlink(target, name)
}
