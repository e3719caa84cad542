package safefs

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrOwnershipTooDeep reports a tree nested deeper than SetGroupOwnership
// walks.
var ErrOwnershipTooDeep = errors.New("nested too deep to change its ownership")

// maxOwnershipDepth bounds how many directories SetGroupOwnership holds
// open at once (one per level). The kubelet's walk, by path, gives up at
// PATH_MAX; a volume nested deeper than this is refused, not half done.
const maxOwnershipDepth = 256

// The kubelet's SetVolumeOwnership masks (pkg/volume): group read-write
// (read for a read-only volume), and for directories group search and
// setgid, so that what is created in them later gets the group too.
const (
	ownerRW   = 0o660
	ownerRO   = 0o440
	ownerExec = 0o110
)

// SetGroupOwnership gives everything beneath d, and d itself, the group gid
// and the group permissions a pod's fsGroup asks for, as the kubelet's
// SetVolumeOwnership: each entry's group becomes gid (a link's own group,
// never its target's), each non-link gets group read-write (read-only:
// read) on top of its mode, directories also group search and setgid. The
// root is done last, so a walk cut short leaves the root's group unchanged
// and is done again.
//
// The tree may be a container's: links are never followed, a mount point
// below d (a bind of the same file system included) is left alone, a
// directory is entered only through a descriptor of its own opened without
// following links, and at most maxOwnershipDepth directories are open at
// once. Entries that vanish meanwhile are skipped.
func (d *Dir) SetGroupOwnership(gid int, readOnly bool) error {
	fd, err := unix.Openat(d.Fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "chown", Path: d.Name(), Err: err}
	}
	defer unix.Close(fd)
	mount, err := mountOf(fd)
	if err != nil {
		return &os.PathError{Op: "chown", Path: d.Name(), Err: err}
	}
	o := &owner{gid: gid, mask: ownerRW, mount: mount}
	if readOnly {
		o.mask = ownerRO
	}
	if err := o.dir(fd, d.Name(), 0); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "chown", Path: d.Name(), Err: err}
	}
	return o.apply(fd, &st, d.Name())
}

// GroupOwnershipDone tells whether d itself has the group and the group
// permissions SetGroupOwnership gives it (the kubelet's check for the
// OnRootMismatch policy): d is done last, so this means the walk finished.
func (d *Dir) GroupOwnershipDone(gid int, readOnly bool) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.Fd(), &st); err != nil {
		return false, &os.PathError{Op: "stat", Path: d.Name(), Err: err}
	}
	want := uint32(ownerRW | ownerExec)
	if readOnly {
		want = ownerRO | ownerExec
	}
	return int(st.Gid) == gid && st.Mode&want == want && st.Mode&unix.S_ISGID != 0, nil
}

type owner struct {
	gid   int
	mask  uint32
	mount mountID
}

// dir does the entries of the open directory fd, depth levels below the
// root.
func (o *owner) dir(fd int, display string, depth int) error {
	return eachName(fd, display, "chown", func(name string) error { return o.entry(fd, name, display, depth) })
}

// entry does one entry of dirfd: a link gets its own group only; anything
// else is opened without following a link (O_PATH, so a FIFO or device is
// not opened for real) and changed through that descriptor, a directory
// after its entries.
func (o *owner) entry(dirfd int, name, display string, depth int) error {
	path := display + "/" + name
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "chown", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		// The link itself; a chmod would reach its target, so none.
		err := unix.Fchownat(dirfd, name, -1, o.gid, unix.AT_SYMLINK_NOFOLLOW)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "chown", Path: path, Err: err}
		}
		return nil
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if depth+1 >= maxOwnershipDepth {
			return &os.PathError{Op: "chown", Path: display, Err: ErrOwnershipTooDeep}
		}
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				return nil // replaced meanwhile
			}
			return &os.PathError{Op: "chown", Path: path, Err: err}
		}
		defer unix.Close(fd)
		if id, err := mountOf(fd); err != nil || !id.same(o.mount) {
			return nil // another mount's: not the volume's to change
		}
		sub := display
		if depth < 16 {
			sub = path // messages name the first levels only
		}
		if err := o.dir(fd, sub, depth+1); err != nil {
			return err
		}
		if err := unix.Fstat(fd, &st); err != nil {
			return &os.PathError{Op: "chown", Path: path, Err: err}
		}
		return o.apply(fd, &st, path)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "chown", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "chown", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil // replaced meanwhile by what the walk does not take this way
	}
	if id, err := mountOf(fd); err != nil || !id.same(o.mount) {
		return nil // a file mounted over the entry
	}
	return o.apply(fd, &st, path)
}

// apply sets the group and adds the mask to the file open as fd (not a
// link), whose stat is st.
func (o *owner) apply(fd int, st *unix.Stat_t, path string) error {
	if err := unix.Fchownat(fd, "", -1, o.gid, unix.AT_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "chown", Path: path, Err: err}
	}
	mode := st.Mode&0o7777 | o.mask
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		mode |= ownerExec | unix.S_ISGID
	}
	// chmod through /proc/self/fd reaches the inode fd holds (an O_PATH
	// descriptor has no fchmod), never a path looked up again.
	if err := unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), mode, 0); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	return nil
}
