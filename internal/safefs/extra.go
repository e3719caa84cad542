package safefs

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Mkdir creates the directory rel beneath d with mode perm (before the
// umask). Unlike MkdirAll it fails if rel exists: a caller that must own the
// directory it fills (an atomic writer's new timestamped directory) cannot
// accept one that someone else made first.
func (d *Dir) Mkdir(rel string, perm os.FileMode) error {
	p, base, err := d.parent(rel)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := unix.Mkdirat(p.Fd(), base, uint32(perm.Perm())); err != nil {
		return &os.PathError{Op: "mkdir", Path: d.join(rel), Err: err}
	}
	return nil
}

// ReadFile reads the regular file rel beneath d without following any link,
// and at most limit bytes of it (more is an error: the caller knows how
// large the file it expects can be). It also returns the file's mode, read
// from the descriptor that was read, so the two describe the same file.
func (d *Dir) ReadFile(rel string, limit int64) ([]byte, os.FileMode, error) {
	f, err := d.OpenFile(rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0, NoSymlinks)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, &os.PathError{Op: "read", Path: d.join(rel), Err: errors.New("not a regular file")}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, 0, &os.PathError{Op: "read", Path: d.join(rel), Err: err}
	}
	if int64(len(data)) > limit {
		return nil, 0, &os.PathError{Op: "read", Path: d.join(rel), Err: errors.New("larger than expected")}
	}
	return data, fi.Mode(), nil
}
