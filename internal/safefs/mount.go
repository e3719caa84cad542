package safefs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// OpenFollow opens the directory at p following symbolic links on the way,
// as a hostPath volume's path is meant (it may be /var/run, a link to /run).
// Later work beneath the returned Dir is confined to what p named when it
// was opened, whatever happens to p afterwards.
func OpenFollow(p string) (*Dir, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return &Dir{f: os.NewFile(uintptr(fd), p)}, nil
}

// ProcPath names the directory by its descriptor (see the function ProcPath).
func (d *Dir) ProcPath() string { return ProcPath(d.f) }

// Stat describes the directory itself.
func (d *Dir) Stat() (os.FileInfo, error) { return d.f.Stat() }

// Mkdir creates the directory name (one component) in d with mode perm
// applied exactly (not narrowed by the umask). It never follows a link:
// mkdirat(2) fails on any existing entry.
func (d *Dir) Mkdir(name string, perm os.FileMode) error {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return &os.PathError{Op: "mkdir", Path: d.join(name), Err: errors.New("not a single path component")}
	}
	if err := unix.Mkdirat(d.Fd(), name, uint32(perm.Perm())); err != nil {
		return &os.PathError{Op: "mkdir", Path: d.join(name), Err: err}
	}
	return d.Chmod(name, perm)
}

// BindMount bind-mounts src onto target, both named through their
// descriptors (/proc/self/fd/N), so neither can be swapped for a link
// between the check that opened them and the mount. The mount is not
// recursive: mounts below src are not carried along, as with the kubelet's
// subPath binds.
func BindMount(src, target *os.File) error {
	if err := unix.Mount(ProcPath(src), ProcPath(target), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mount %s onto %s: %w", src.Name(), target.Name(), err)
	}
	return nil
}

// MountTmpfs mounts a tmpfs with data (e.g. "mode=0777,size=1048576") on
// the directory d, named through its descriptor. It is nosuid and nodev.
func MountTmpfs(d *Dir, data string) error {
	if err := unix.Mount("tmpfs", d.ProcPath(), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", d.Name(), err)
	}
	return nil
}

// IsMountPoint tells whether the directory d is the root of a mount (its
// device differs from its parent's, or it is a bind of a directory of the
// same file system, which the mount ID tells apart).
func IsMountPoint(d *Dir) (bool, error) {
	// ".." of a descriptor is the directory's parent (the mounted-on
	// directory for a mount root), whatever its path has become.
	fd, err := unix.Openat(d.Fd(), "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: d.join(".."), Err: err}
	}
	parent := &Dir{f: os.NewFile(uintptr(fd), d.join(".."))}
	defer parent.Close()
	var a, b unix.Statx_t
	flags := unix.AT_EMPTY_PATH | unix.AT_SYMLINK_NOFOLLOW
	if err := unix.Statx(d.Fd(), "", flags, unix.STATX_MNT_ID, &a); err != nil {
		return false, &os.PathError{Op: "statx", Path: d.Name(), Err: err}
	}
	if err := unix.Statx(parent.Fd(), "", flags, unix.STATX_MNT_ID, &b); err != nil {
		return false, &os.PathError{Op: "statx", Path: parent.Name(), Err: err}
	}
	if a.Mask&b.Mask&unix.STATX_MNT_ID != 0 {
		return a.Mnt_id != b.Mnt_id, nil
	}
	return a.Dev_major != b.Dev_major || a.Dev_minor != b.Dev_minor, nil
}

// MountsUnder lists the mount points at dir or below it, from
// /proc/self/mountinfo, deepest first (the order to unmount them in), a
// point with stacked mounts once per mount. dir
// must be a path knode built; it is resolved once to match the kernel's
// spelling.
func MountsUnder(dir string) ([]string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		// A path mounted over several times is listed as often: each
		// unmount takes one.
		if mp == real || strings.HasPrefix(mp, real+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		return strings.Count(out[i], "/") > strings.Count(out[j], "/")
	})
	return out, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space,
// \011, \012, \134) in a mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// UnmountAll detaches every mount at dir or below it, deepest first, each
// as many times as it is stacked. MNT_DETACH: a mount still in use (a
// process's working directory) goes out of the tree at once and is freed
// when released; UMOUNT_NOFOLLOW: a mount point replaced by a link is not
// followed elsewhere.
func UnmountAll(dir string) error {
	var errs []error
	for range 8 {
		mps, err := MountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mps) == 0 {
			return errors.Join(errs...)
		}
		errs = errs[:0]
		for _, mp := range mps {
			if err := unix.Unmount(mp, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, &os.PathError{Op: "unmount", Path: mp, Err: err})
			}
		}
	}
	if len(errs) == 0 {
		errs = append(errs, fmt.Errorf("mounts remain under %s", dir))
	}
	return errors.Join(errs...)
}
