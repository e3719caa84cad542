// Package subpath gives a container the part of a volume its volumeMount's
// subPath names, and nothing else.
//
// A volume's tree belongs to the containers that mount it: an init
// container, or an earlier incarnation of the same container, can plant a
// symbolic link (`ln -s / /vol/x`) where a later container's subPath will
// be looked up. Handing the runtime the joined path string would let it
// follow that link to the host's root (CVE-2017-1002101), and checking the
// path before handing it over leaves a window to swap a directory for a
// link (CVE-2021-25741). So, as the kubelet does since those CVEs:
//
//   - the subPath is opened beneath the volume's directory descriptor with
//     openat2(RESOLVE_BENEATH): links that stay in the volume are followed,
//     any that leaves it is refused (ErrOutside);
//   - missing directories are created one at a time beneath the deepest
//     existing one, never through a link (MakeDir);
//   - the opened descriptor is bind-mounted, through /proc/self/fd/N, onto
//     a target knode owns, <pod dir>/volume-subpaths/<volume>/<container>/<index>,
//     and that target is what the runtime gets (Bind). Whatever the
//     container does to its volume afterwards, the mount holds the object
//     that was checked.
//
// Unlike the kubelet, which evaluates links with the host's root and then
// checks the result's path, RESOLVE_BENEATH also refuses an absolute link
// even when it names a place inside the volume by its host path, and a
// relative one that leaves the volume and comes back: a container cannot
// know the volume's host path, so no legitimate tree has such links.
package subpath

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"knode.io/knode/internal/safefs"
)

// DirName is the directory under a pod's directory that holds the bind
// targets, the kubelet's name for it.
const DirName = "volume-subpaths"

// ErrOutside reports a subPath that resolves to a place outside its volume.
var ErrOutside = safefs.ErrOutside

// Validate checks a subPath (after subPathExpr expansion) as the kubelet
// does before it touches anything, with the kubelet's messages.
func Validate(p string) error {
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("error SubPath `%s` must not be an absolute path", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("unable to provision SubPath `%s`: must not contain '..'", p)
		}
	}
	return nil
}

// Resolve opens the subPath p beneath the volume directory vol, creating
// the directories that are missing (MakeDir, with the volume's own mode),
// and returns an O_PATH descriptor of what it names: a directory, a file,
// or whatever else the volume holds there. A path that leaves the volume,
// by a link or otherwise, fails with ErrOutside and nothing is created.
func Resolve(vol *safefs.Dir, p string) (*os.File, error) {
	if err := Validate(p); err != nil {
		return nil, err
	}
	rel := path.Clean(p)
	f, err := vol.OpenPath(rel, safefs.InsideLinks)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	st, err := vol.Stat()
	if err != nil {
		return nil, err
	}
	if err := MakeDir(vol, rel, st.Mode().Perm()); err != nil {
		return nil, err
	}
	return vol.OpenPath(rel, safefs.InsideLinks)
}

// MakeDir creates the directory rel beneath vol and any missing parents, as
// the kubelet's doSafeMakeDir: the deepest directory that exists is found
// following only links that stay in the volume, the rest is created from
// there one level at a time without following any link (a link planted
// meanwhile fails the call), and each created level gets mode perm exactly.
func MakeDir(vol *safefs.Dir, rel string, perm os.FileMode) error {
	clean, err := safefs.Clean(rel)
	if err != nil {
		return err
	}
	if clean == "." {
		return nil
	}
	parts := strings.Split(clean, "/")
	var base *safefs.Dir
	k := len(parts)
	for ; k >= 0; k-- {
		prefix := "."
		if k > 0 {
			prefix = strings.Join(parts[:k], "/")
		}
		d, err := vol.OpenDir(prefix, safefs.InsideLinks)
		if err == nil {
			base = d
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if base == nil {
		return &os.PathError{Op: "mkdir", Path: vol.Name(), Err: os.ErrNotExist}
	}
	defer base.Close()
	if k == len(parts) {
		return nil
	}
	rest := parts[k:]
	created, err := base.MkdirAll(strings.Join(rest, "/"), perm)
	if err != nil {
		return err
	}
	created.Close()
	// mkdirat(2) applied the umask; the levels made here get perm itself.
	for i := range rest {
		if err := base.Chmod(strings.Join(rest[:i+1], "/"), perm); err != nil {
			return err
		}
	}
	return nil
}

// TargetPath is where the bind of a container's volumeMount number index
// lives: <podDir>/volume-subpaths/<volume>/<container>/<index>.
func TargetPath(podDir, volume, container string, index int) string {
	return filepath.Join(podDir, DirName, volume, container, strconv.Itoa(index))
}

// Bind mounts src (from Resolve) onto the container's target for volume
// mount index, replacing whatever was mounted there for an earlier
// instance, and returns the target's path for the runtime. The target is a
// directory for a directory and an empty file for anything else.
func Bind(podDir, volume, container string, index int, src *os.File) (string, error) {
	// A pod with only hostPath volumes may have no directory yet.
	if err := os.MkdirAll(podDir, 0o750); err != nil {
		return "", err
	}
	pd, err := safefs.Open(podDir)
	if err != nil {
		return "", err
	}
	defer pd.Close()
	rel := path.Join(DirName, volume, container)
	cd, err := pd.MkdirAll(rel, 0o750)
	if err != nil {
		return "", err
	}
	defer cd.Close()
	name := strconv.Itoa(index)
	target := TargetPath(podDir, volume, container, index)
	if err := safefs.UnmountAll(target); err != nil {
		return "", err
	}
	if err := cd.RemoveAll(name); err != nil {
		return "", err
	}
	st, err := src.Stat()
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		err = cd.Mkdir(name, 0o750)
	} else {
		var f *os.File
		if f, err = cd.OpenFile(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o640, safefs.NoSymlinks); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return "", err
	}
	tf, err := cd.OpenPath(name, safefs.NoSymlinks)
	if err != nil {
		return "", err
	}
	defer tf.Close()
	if err := safefs.BindMount(src, tf); err != nil {
		_ = cd.Remove(name)
		return "", err
	}
	return target, nil
}

// CleanContainer unmounts and removes a container's bind targets in every
// volume of the pod: its instances are gone or about to be replaced.
func CleanContainer(podDir, container string) error {
	pd, err := safefs.Open(podDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer pd.Close()
	volumes, err := pd.ReadDirNames(DirName)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, v := range volumes {
		rel := path.Join(DirName, v, container)
		if err := safefs.UnmountAll(filepath.Join(podDir, rel)); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := pd.RemoveAll(rel); err != nil {
			errs = append(errs, err)
		}
		// The volume's directory goes once no container has a bind in it.
		_ = pd.Remove(path.Join(DirName, v))
	}
	return errors.Join(errs...)
}

// CleanPod unmounts and removes every bind target of the pod.
func CleanPod(podDir string) error {
	if err := safefs.UnmountAll(filepath.Join(podDir, DirName)); err != nil {
		return err
	}
	pd, err := safefs.Open(podDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer pd.Close()
	return pd.RemoveAll(DirName)
}
