package safefs

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ErrTooDeep reports a tree nested deeper than DiskUsage measures.
var ErrTooDeep = errors.New("nested too deep to measure")

// maxUsageDepth bounds how many directories DiskUsage holds open at once.
// A tree deeper than this is not measured at all (ErrTooDeep): a container
// cannot hide data from a size limit by burying it.
const maxUsageDepth = 512

// DiskUsage adds up the space the tree beneath d takes on disk, as du does
// (allocated blocks, the directories' own included), without following a
// link and without counting what is mounted below d. It stops counting once
// the total exceeds stop (stop <= 0: never), since a caller comparing with
// a limit needs no more; the total returned is then more than stop.
func (d *Dir) DiskUsage(stop int64) (int64, error) {
	fd, err := unix.Openat(d.Fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "measure", Path: d.Name(), Err: err}
	}
	defer unix.Close(fd)
	mount, err := mountOf(fd)
	if err != nil {
		return 0, &os.PathError{Op: "measure", Path: d.Name(), Err: err}
	}
	u := &usage{mount: mount, stop: stop}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, &os.PathError{Op: "measure", Path: d.Name(), Err: err}
	}
	u.total = st.Blocks * 512
	err = u.dir(fd, d.Name(), 0)
	if errors.Is(err, errStop) {
		err = nil
	}
	return u.total, err
}

var errStop = errors.New("over the limit")

type usage struct {
	mount mountID
	stop  int64
	total int64
}

// dir counts the entries of the open directory fd, depth levels below the
// top.
func (u *usage) dir(fd int, display string, depth int) error {
	return eachName(fd, display, "measure", func(name string) error { return u.entry(fd, name, display, depth) })
}

// eachName calls fn with each name in the open directory fd, read a batch
// at a time through a descriptor of its own; op names the operation in
// errors.
func eachName(fd int, display, op string, fn func(name string) error) error {
	lfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: op, Path: display, Err: err}
	}
	list := os.NewFile(uintptr(lfd), display)
	defer list.Close()
	for {
		names, err := list.Readdirnames(removeBatch)
		for _, n := range names {
			if err := fn(n); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(names) == 0) {
			return nil
		}
		if err != nil {
			return &os.PathError{Op: op, Path: display, Err: err}
		}
	}
}

func (u *usage) entry(dirfd int, name, display string, depth int) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // removed meanwhile
		}
		return &os.PathError{Op: "measure", Path: display + "/" + name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return u.add(st.Blocks * 512)
	}
	if depth+1 >= maxUsageDepth {
		return &os.PathError{Op: "measure", Path: display, Err: ErrTooDeep}
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return nil // replaced meanwhile
		}
		return &os.PathError{Op: "measure", Path: display + "/" + name, Err: err}
	}
	defer unix.Close(fd)
	id, err := mountOf(fd)
	if err != nil {
		return &os.PathError{Op: "measure", Path: display + "/" + name, Err: err}
	}
	if !id.same(u.mount) {
		return nil // another mount's, as du -x
	}
	if err := u.add(st.Blocks * 512); err != nil {
		return err
	}
	sub := display
	if depth < 16 {
		sub = display + "/" + name // messages name the first levels only
	}
	return u.dir(fd, sub, depth+1)
}

func (u *usage) add(n int64) error {
	u.total += n
	if u.stop > 0 && u.total > u.stop {
		return errStop
	}
	return nil
}
