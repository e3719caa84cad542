package safefs

import (
	"io"
	"os"
)

// ReadTail reads at most the last limit bytes of the regular file rel
// beneath d without following any link. Unlike ReadFile a larger file is no
// error: files a container writes (a termination message, a log) are kept
// by their end, as the kubelet's tail.ReadAtMost keeps them, and only
// limit bytes are ever read whatever the container wrote. It also returns
// the file's size, from the descriptor that was read.
func (d *Dir) ReadTail(rel string, limit int64) ([]byte, int64, error) {
	f, fi, err := d.openRegular(rel)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return readTail(f, fi.Size(), limit, d.join(rel))
}

// readTail reads the last limit bytes of f's first size bytes (its size
// when it was checked), so a file that grows meanwhile is not read further.
func readTail(f *os.File, size, limit int64, display string) ([]byte, int64, error) {
	start := max(size-limit, 0)
	data, err := io.ReadAll(io.NewSectionReader(f, start, size-start))
	if err != nil {
		return nil, 0, &os.PathError{Op: "read", Path: display, Err: err}
	}
	return data, size, nil
}
