package apivolume

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"

	"knode.io/knode/internal/safefs"
)

// openVolume opens the volume directory dir (built by knode from trusted
// parts) for the writer. A memory-backed volume gets its tmpfs first, once:
// after a knode restart the mount is found and kept.
func openVolume(dir string, memory bool) (*safefs.Dir, error) {
	d, err := safefs.Open(dir)
	if err != nil || !memory {
		return d, err
	}
	mounted, err := isTmpfsMount(d, dir)
	if err != nil {
		d.Close()
		return nil, err
	}
	if mounted {
		return d, nil
	}
	// Mount through the descriptor, so the tmpfs lands on the directory
	// that was opened. nosuid and nodev: the files are data.
	f, err := d.OpenPath(".", safefs.NoSymlinks)
	if err != nil {
		d.Close()
		return nil, err
	}
	err = unix.Mount("tmpfs", safefs.ProcPath(f), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755")
	f.Close()
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	// Reopen: the old descriptor is the directory under the mount.
	d, err = safefs.Open(dir)
	if err != nil {
		return nil, err
	}
	if mounted, err := isTmpfsMount(d, dir); err != nil || !mounted {
		d.Close()
		return nil, errors.Join(fmt.Errorf("%s: the tmpfs just mounted is not there", dir), err)
	}
	return d, nil
}

// isTmpfsMount reports whether the opened directory d is the root of a
// tmpfs mount; a mount of anything else there is refused.
func isTmpfsMount(d *safefs.Dir, dir string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Fstat(d.Fd(), &st); err != nil {
		return false, fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return false, fmt.Errorf("stat %s: %w", filepath.Dir(dir), err)
	}
	if st.Dev == parent.Dev {
		return false, nil
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(d.Fd(), &fs); err != nil {
		return false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return false, fmt.Errorf("%s is a mount point but not tmpfs (type %#x)", dir, fs.Type)
	}
	return true, nil
}
