// Package safefs works beneath a directory that a container may have
// written to, without ever leaving it.
//
// A volume's contents (an emptyDir, an API-object volume, the tree under a
// subPath) can be changed by the containers that mount it, at any time,
// including between knode's check and its use. So nothing here resolves a
// path string from the host's root: a Dir is opened once from a path knode
// built itself, and every later lookup is an openat2(2) relative to that
// descriptor with RESOLVE_BENEATH, which the kernel enforces atomically —
// "..", an absolute symlink or a symlink that climbs out all fail with
// EXDEV instead of leading elsewhere. Operations that create, replace or
// remove an entry open its parent with RESOLVE_NO_SYMLINKS as well and act
// on the final name with the *at system calls, which never follow it.
//
// This is the kubelet's answer to CVE-2017-1002101 and CVE-2021-25741
// (subPath through planted links), made the only way knode touches such
// trees.
package safefs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrOutside reports a path that leaves its directory, whether by "..", by an
// absolute path or through a symbolic link.
var ErrOutside = errors.New("path leaves its directory")

// ErrSymlink reports a symbolic link where knode accepts none.
var ErrSymlink = errors.New("path goes through a symbolic link")

// Follow says whether symbolic links beneath the directory may be followed,
// as long as they stay beneath it.
type Follow bool

const (
	// NoSymlinks refuses every symbolic link on the way (RESOLVE_NO_SYMLINKS).
	NoSymlinks Follow = false
	// InsideLinks follows links that resolve beneath the directory and
	// refuses the others (RESOLVE_BENEATH alone).
	InsideLinks Follow = true
)

// Dir is an open directory that operations are confined to. Its descriptor
// is O_PATH: it grants no read or write access of its own.
type Dir struct {
	f *os.File
}

// Open opens the directory at p, which must be a path knode built from
// trusted parts (its root dir, a validated pod UID, a volume name). The last
// component must not be a symbolic link.
func Open(p string) (*Dir, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: classify(err)}
	}
	return &Dir{f: os.NewFile(uintptr(fd), p)}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.f.Close() }

// Name is the path the directory was opened as (for messages only).
func (d *Dir) Name() string { return d.f.Name() }

// Fd is the directory's descriptor, valid until Close.
func (d *Dir) Fd() int { return int(d.f.Fd()) }

// ProcPath names an open file by its descriptor, /proc/self/fd/N: a mount
// or a runtime given this path reaches exactly the object that was checked,
// even if the tree was changed since.
func ProcPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

// Clean validates a relative path given by a pod (a subPath, an item path):
// not absolute, no ".." component, not empty. It returns the cleaned path.
func Clean(rel string) (string, error) {
	if rel == "" {
		return "", fmt.Errorf("%q: %w", rel, errors.New("empty path"))
	}
	if strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("%q: %w", rel, ErrOutside)
	}
	for _, part := range strings.Split(rel, "/") {
		if part == ".." {
			return "", fmt.Errorf("%q: %w", rel, ErrOutside)
		}
	}
	return path.Clean(rel), nil
}

func resolveFlags(follow Follow) uint64 {
	flags := uint64(unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS)
	if follow == NoSymlinks {
		flags |= unix.RESOLVE_NO_SYMLINKS
	}
	return flags
}

// classify turns the errors openat2 gives for a refused resolution into
// ErrOutside / ErrSymlink, keeping the others.
func classify(err error) error {
	switch {
	case errors.Is(err, unix.EXDEV):
		return ErrOutside
	case errors.Is(err, unix.ELOOP):
		return ErrSymlink
	}
	return err
}

// openat2 opens rel beneath the directory descriptor dirfd; display names
// the result in messages.
func openat2(dirfd int, rel string, flags int, mode uint32, follow Follow, display string) (*os.File, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveFlags(follow)}
	for {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue // EAGAIN: a rename raced the lookup; the kernel asks to retry
		}
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), display), nil
	}
}

// OpenFile opens rel beneath d with open(2) flags. With O_CREAT the file is
// created with mode perm; a final symbolic link is never followed when
// creating (add O_NOFOLLOW or use NoSymlinks to refuse one otherwise).
func (d *Dir) OpenFile(rel string, flags int, perm os.FileMode, follow Follow) (*os.File, error) {
	if flags&unix.O_CREAT != 0 {
		flags |= unix.O_NOFOLLOW
	}
	f, err := openat2(d.Fd(), rel, flags, uint32(perm.Perm()), follow, d.join(rel))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.join(rel), Err: classify(err)}
	}
	return f, nil
}

// OpenPath opens rel beneath d as an O_PATH descriptor: enough to stat it,
// to name it through ProcPath, or to open further beneath it.
func (d *Dir) OpenPath(rel string, follow Follow) (*os.File, error) {
	return d.OpenFile(rel, unix.O_PATH, 0, follow)
}

// OpenDir opens the directory rel beneath d.
func (d *Dir) OpenDir(rel string, follow Follow) (*Dir, error) {
	f, err := d.OpenFile(rel, unix.O_PATH|unix.O_DIRECTORY, 0, follow)
	if err != nil {
		return nil, err
	}
	return &Dir{f: f}, nil
}

// parent opens the directory holding rel (without following any link) and
// returns it with rel's last component.
func (d *Dir) parent(rel string) (*Dir, string, error) {
	clean, err := Clean(rel)
	if err != nil {
		return nil, "", &os.PathError{Op: "resolve", Path: d.join(rel), Err: err}
	}
	dir, base := path.Split(clean)
	if base == "." || base == "" {
		return nil, "", &os.PathError{Op: "resolve", Path: d.join(rel), Err: errors.New("names the directory itself")}
	}
	if dir == "" {
		dir = "."
	}
	p, err := d.OpenDir(dir, NoSymlinks)
	if err != nil {
		return nil, "", err
	}
	return p, base, nil
}

// MkdirAll creates rel and its missing parents beneath d with mode perm
// (before the umask), and opens it. Directories that exist are walked
// without following any link, so a link planted on the way fails the call
// instead of leading the new directories elsewhere.
func (d *Dir) MkdirAll(rel string, perm os.FileMode) (*Dir, error) {
	clean, err := Clean(rel)
	if err != nil {
		return nil, &os.PathError{Op: "mkdir", Path: d.join(rel), Err: err}
	}
	cur, err := d.OpenDir(".", NoSymlinks)
	if err != nil {
		return nil, err
	}
	if clean == "." {
		return cur, nil
	}
	for _, part := range strings.Split(clean, "/") {
		if err := unix.Mkdirat(cur.Fd(), part, uint32(perm.Perm())); err != nil && !errors.Is(err, unix.EEXIST) {
			cur.Close()
			return nil, &os.PathError{Op: "mkdir", Path: d.join(rel), Err: err}
		}
		next, err := cur.OpenDir(part, NoSymlinks)
		cur.Close()
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

// Lstat describes rel beneath d without following it.
func (d *Dir) Lstat(rel string) (os.FileInfo, error) {
	p, base, err := d.parent(rel)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	// O_PATH|O_NOFOLLOW on a final link opens the link itself.
	f, err := openat2(p.Fd(), base, unix.O_PATH|unix.O_NOFOLLOW, 0, NoSymlinks, d.join(rel))
	if err != nil {
		return nil, &os.PathError{Op: "lstat", Path: d.join(rel), Err: classify(err)}
	}
	defer f.Close()
	return f.Stat()
}

// Readlink reads the symbolic link rel beneath d.
func (d *Dir) Readlink(rel string) (string, error) {
	p, base, err := d.parent(rel)
	if err != nil {
		return "", err
	}
	defer p.Close()
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(p.Fd(), base, buf)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: d.join(rel), Err: err}
	}
	return string(buf[:n]), nil
}

// Symlink creates the symbolic link rel beneath d pointing to target. The
// target is stored, not resolved.
func (d *Dir) Symlink(target, rel string) error {
	p, base, err := d.parent(rel)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := unix.Symlinkat(target, p.Fd(), base); err != nil {
		return &os.PathError{Op: "symlink", Path: d.join(rel), Err: err}
	}
	return nil
}

// Rename moves oldRel to newRel, both beneath d, replacing newRel (never
// following either if it is a link: rename(2) acts on the entries).
func (d *Dir) Rename(oldRel, newRel string) error {
	op, obase, err := d.parent(oldRel)
	if err != nil {
		return err
	}
	defer op.Close()
	np, nbase, err := d.parent(newRel)
	if err != nil {
		return err
	}
	defer np.Close()
	if err := unix.Renameat(op.Fd(), obase, np.Fd(), nbase); err != nil {
		return &os.LinkError{Op: "rename", Old: d.join(oldRel), New: d.join(newRel), Err: err}
	}
	return nil
}

// Remove removes the file, link or empty directory rel beneath d. A link is
// removed, never what it points to.
func (d *Dir) Remove(rel string) error {
	p, base, err := d.parent(rel)
	if err != nil {
		return err
	}
	defer p.Close()
	err = unix.Unlinkat(p.Fd(), base, 0)
	if errors.Is(err, unix.EISDIR) {
		err = unix.Unlinkat(p.Fd(), base, unix.AT_REMOVEDIR)
	}
	if err != nil {
		return &os.PathError{Op: "remove", Path: d.join(rel), Err: err}
	}
	return nil
}

// RemoveAll removes rel beneath d and everything below it. Links are
// removed, never followed, and a mount point below (a bind of the same file
// system included) is refused rather than emptied: what is mounted there
// is not the volume's.
//
// The tree is a container's: it can be nested far deeper than knode can
// hold descriptors open (mkdir -p of 1024 levels at a time builds tens of
// thousands of levels in seconds). So the walk keeps at most
// maxRemoveDepth directories open and its messages' paths as short: a
// directory found deeper is moved up into the directory being removed
// (a rename inside the tree) and taken apart from there. Memory and
// descriptors stay bounded whatever the depth, and the removal finishes.
func (d *Dir) RemoveAll(rel string) error {
	p, base, err := d.parent(rel)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer p.Close()
	parentID, err := mountOf(p.Fd())
	if err != nil {
		return &os.PathError{Op: "remove", Path: d.join(rel), Err: err}
	}
	err = unix.Unlinkat(p.Fd(), base, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return &os.PathError{Op: "remove", Path: d.join(rel), Err: err}
	}
	top, err := openForRemoval(p.Fd(), base, parentID, d.join(rel))
	if top < 0 {
		return err
	}
	defer unix.Close(top)
	r := &remover{top: top, mount: parentID}
	return r.removeDir(p.Fd(), base, top, d.join(rel), 0)
}

// maxRemoveDepth is how many directories RemoveAll holds open at once;
// removeBatch is how many names it reads from a directory at a time.
const (
	maxRemoveDepth = 64
	removeBatch    = 1024
)

// remover takes apart the tree under top, all on one mount.
type remover struct {
	top   int
	mount mountID
	moved uint64 // directories moved up to top so far
}

// mountID tells which mount an open file is on: its device and, where the
// kernel reports it (statx STATX_MNT_ID, Linux 5.8), the mount's ID. The
// device alone misses a bind mount of a directory of the same file system
// (a hostPath subPath bind, a mount left in an emptyDir), and removing
// through one would empty the host's directory it shows.
type mountID struct {
	devMajor, devMinor uint32
	mnt                uint64
	hasMnt             bool
}

func mountOf(fd int) (mountID, error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		return mountID{}, err
	}
	return mountID{devMajor: stx.Dev_major, devMinor: stx.Dev_minor, mnt: stx.Mnt_id, hasMnt: stx.Mask&unix.STATX_MNT_ID != 0}, nil
}

func (a mountID) same(b mountID) bool {
	if a.devMajor != b.devMajor || a.devMinor != b.devMinor {
		return false
	}
	return !a.hasMnt || !b.hasMnt || a.mnt == b.mnt
}

// openForRemoval opens the directory name in dirfd without following a
// link and checks that it is on mount (not a mount point). It returns -1
// and nil when the entry is gone.
func openForRemoval(dirfd int, name string, mount mountID, display string) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, nil
		}
		return -1, &os.PathError{Op: "remove", Path: display, Err: err}
	}
	id, err := mountOf(fd)
	if err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "remove", Path: display, Err: err}
	}
	if !id.same(mount) {
		unix.Close(fd)
		return -1, &os.PathError{Op: "remove", Path: display, Err: errors.New("is a mount point; unmount it first")}
	}
	return fd, nil
}

// readNames reads up to removeBatch names of the directory fd from its
// start, through a descriptor of its own (entries removed meanwhile must
// not make the next read skip any).
func readNames(fd int, display string) ([]string, error) {
	lfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "remove", Path: display, Err: err}
	}
	f := os.NewFile(uintptr(lfd), display)
	defer f.Close()
	names, err := f.Readdirnames(removeBatch)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, &os.PathError{Op: "remove", Path: display, Err: err}
	}
	return names, nil
}

// empty removes the entries of the open directory fd, depth levels below
// the top, a batch of names at a time, until a batch comes back short. The
// top itself goes on while directories are being moved up into it.
func (r *remover) empty(fd int, display string, depth int) error {
	for {
		names, err := readNames(fd, display)
		if err != nil {
			return err
		}
		before := r.moved
		for _, n := range names {
			if err := r.removeAt(fd, n, display+"/"+n, depth+1); err != nil {
				return err
			}
		}
		if len(names) < removeBatch && (depth > 0 || r.moved == before) {
			return nil
		}
	}
}

// removeDir empties the directory name in dirfd (open as fd) and removes
// it. Entries created meanwhile (a container still writing) make the rmdir
// fail with ENOTEMPTY: it is tried again a bounded number of times.
func (r *remover) removeDir(dirfd int, name string, fd int, display string, depth int) error {
	for range 5 {
		if err := r.empty(fd, display, depth); err != nil {
			return err
		}
		err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.ENOTEMPTY) {
			return &os.PathError{Op: "remove", Path: display, Err: err}
		}
	}
	return &os.PathError{Op: "remove", Path: display, Err: unix.ENOTEMPTY}
}

// removeAt removes name in dirfd, depth levels below the top. A directory
// at maxRemoveDepth is moved up into the top instead, which removes it in
// a later batch.
func (r *remover) removeAt(dirfd int, name, display string, depth int) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return &os.PathError{Op: "remove", Path: display, Err: err}
	}
	if depth >= maxRemoveDepth {
		return r.moveUp(dirfd, name, display)
	}
	fd, err := openForRemoval(dirfd, name, r.mount, display)
	if fd < 0 {
		return err
	}
	defer unix.Close(fd)
	return r.removeDir(dirfd, name, fd, display, depth)
}

// moveUp renames the directory name in dirfd into the top directory under
// a fresh name, never replacing an entry there. Both are inside the tree
// being removed, so nothing leaves it.
func (r *remover) moveUp(dirfd int, name, display string) error {
	for {
		r.moved++
		fresh := ".safefs-removing-" + strconv.FormatUint(r.moved, 10)
		err := unix.Renameat2(dirfd, name, r.top, fresh, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) {
			// A file system without RENAME_NOREPLACE: what a plain rename
			// could replace is in the tree being removed anyway.
			err = unix.Renameat(dirfd, name, r.top, fresh)
		}
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			continue
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "remove", Path: display, Err: err}
		}
		return nil
	}
}

// WriteFile writes data to rel beneath d: the file is created exclusively
// under a temporary name in the same directory and renamed over rel, so a
// reader sees the old or the new content and a planted link at rel is
// replaced, never written through.
func (d *Dir) WriteFile(rel string, data []byte, perm os.FileMode) error {
	return d.writeFile(rel, data, perm, false)
}

// WriteFileSync is WriteFile made durable: the new content is synced before
// it replaces the old, and the directory after, so a crash leaves either
// the old file or the whole new one, never an empty one. For state knode
// must not forget (which user-namespace range a pod holds, what it was
// allocated).
func (d *Dir) WriteFileSync(rel string, data []byte, perm os.FileMode) error {
	return d.writeFile(rel, data, perm, true)
}

func (d *Dir) writeFile(rel string, data []byte, perm os.FileMode, durable bool) error {
	p, base, err := d.parent(rel)
	if err != nil {
		return err
	}
	defer p.Close()
	tmp := ".." + base + ".tmp" + strconv.FormatInt(time.Now().UnixNano(), 36)
	f, err := openat2(p.Fd(), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, uint32(perm.Perm()), NoSymlinks, d.join(rel))
	if err != nil {
		return &os.PathError{Op: "write", Path: d.join(rel), Err: classify(err)}
	}
	_, werr := f.Write(data)
	// The umask must not narrow the mode a pod asked for.
	if werr == nil {
		werr = f.Chmod(perm.Perm())
	}
	if werr == nil && durable {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = unix.Renameat(p.Fd(), tmp, p.Fd(), base)
	}
	if werr != nil {
		_ = unix.Unlinkat(p.Fd(), tmp, 0)
		return &os.PathError{Op: "write", Path: d.join(rel), Err: werr}
	}
	if durable {
		// p is an O_PATH descriptor, which cannot be synced: the
		// directory itself is opened for it.
		fd, err := unix.Openat(int(p.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Fsync(fd)
			unix.Close(fd)
		}
		if err != nil {
			return &os.PathError{Op: "sync", Path: d.join(rel), Err: err}
		}
	}
	return nil
}

// Chmod sets the mode of rel beneath d (which must not be a link; Linux has
// no lchmod, so this goes through an O_PATH descriptor of the entry itself).
func (d *Dir) Chmod(rel string, perm os.FileMode) error {
	f, err := d.OpenPath(rel, NoSymlinks)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fchmodat(unix.AT_FDCWD, ProcPath(f), uint32(perm.Perm()), 0); err != nil {
		return &os.PathError{Op: "chmod", Path: d.join(rel), Err: err}
	}
	return nil
}

// Chown sets the owner of rel beneath d without following a link.
func (d *Dir) Chown(rel string, uid, gid int) error {
	f, err := d.OpenPath(rel, NoSymlinks)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fchownat(int(f.Fd()), "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "chown", Path: d.join(rel), Err: err}
	}
	return nil
}

// ReadDirNames lists the entries of the directory rel beneath d.
func (d *Dir) ReadDirNames(rel string) ([]string, error) {
	f, err := d.OpenFile(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0, NoSymlinks)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (d *Dir) join(rel string) string {
	return path.Join(d.f.Name(), rel)
}
