package safefs

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ReadFile reads the regular file rel beneath d without following any link,
// and at most limit bytes of it (more is an error: the caller knows how
// large the file it expects can be). It also returns the file's mode, read
// from the descriptor that was read, so the two describe the same file.
func (d *Dir) ReadFile(rel string, limit int64) ([]byte, os.FileMode, error) {
	f, fi, err := d.openRegular(rel)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, 0, &os.PathError{Op: "read", Path: d.join(rel), Err: err}
	}
	if int64(len(data)) > limit {
		return nil, 0, &os.PathError{Op: "read", Path: d.join(rel), Err: errors.New("larger than expected")}
	}
	return data, fi.Mode(), nil
}

// openRegular opens the regular file rel beneath d for reading, without
// following any link and without blocking on a FIFO a container planted,
// and describes it from the same descriptor.
func (d *Dir) openRegular(rel string) (*os.File, os.FileInfo, error) {
	f, err := d.OpenFile(rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0, NoSymlinks)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &os.PathError{Op: "read", Path: d.join(rel), Err: errors.New("not a regular file")}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}
