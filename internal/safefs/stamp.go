package safefs

import (
	"fmt"
	"maps"
	"os"
	"path"
	"syscall"
	"time"
)

// Stamp identifies the state of a file, directory or link without reading
// it: which object it is (device and inode), its type, mode and size, and
// when it last changed (ctime). A writer that keeps the stamp of what it
// wrote can tell, by a stat alone, that nothing has touched it since: any
// write, chmod, chown or truncation moves ctime, a replacement brings
// another inode, and adding, removing or renaming an entry moves its
// directory's ctime. Nobody but the kernel sets ctime.
type Stamp struct {
	dev, ino uint64
	mode     uint32
	size     int64
	ctime    syscall.Timespec
}

// SettleTime is how long after its last change a stamp can be trusted: a
// change within the same clock tick as the one stamped could carry the
// same ctime and go unseen (git's "racy clean" problem), and a tick is at
// most a second on the coarsest filesystems.
const SettleTime = 2 * time.Second

func stampOf(fi os.FileInfo) (Stamp, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Stamp{}, fmt.Errorf("%s: no stat data", fi.Name())
	}
	return Stamp{dev: st.Dev, ino: st.Ino, mode: st.Mode, size: st.Size, ctime: st.Ctim}, nil
}

// Settled reports whether the stamp's last change is at least SettleTime
// before now, so a later change cannot share its ctime.
func (s Stamp) Settled(now time.Time) bool {
	return now.Sub(time.Unix(s.ctime.Unix())) >= SettleTime
}

// Stamp is rel's stamp beneath d, without following a link at rel.
func (d *Dir) Stamp(rel string) (Stamp, error) {
	fi, err := d.Lstat(rel)
	if err != nil {
		return Stamp{}, err
	}
	return stampOf(fi)
}

// TreeStamp is the stamps of a directory and of everything beneath it, by
// path relative to it ("." for itself).
type TreeStamp map[string]Stamp

// Equal reports whether two trees are the same objects in the same state.
func (t TreeStamp) Equal(o TreeStamp) bool { return maps.Equal(t, o) }

// Settled reports whether every entry of the tree is settled at now.
func (t TreeStamp) Settled(now time.Time) bool {
	for _, s := range t {
		if !s.Settled(now) {
			return false
		}
	}
	return true
}

// TreeStamp stamps d and everything beneath it, without following links
// and without reading any file. A tree of more than maxEntries entries
// is an error: the caller then checks it the long way.
func (d *Dir) TreeStamp(maxEntries int) (TreeStamp, error) {
	fi, err := d.Stat()
	if err != nil {
		return nil, err
	}
	root, err := stampOf(fi)
	if err != nil {
		return nil, err
	}
	t := TreeStamp{".": root}
	return t, d.stampBeneath(".", t, maxEntries)
}

func (d *Dir) stampBeneath(rel string, t TreeStamp, maxEntries int) error {
	names, err := d.ReadDirNames(rel)
	if err != nil {
		return err
	}
	for _, name := range names {
		if len(t) >= maxEntries {
			return fmt.Errorf("%s: more than %d entries", d.join(rel), maxEntries)
		}
		p := path.Join(rel, name)
		fi, err := d.Lstat(p)
		if err != nil {
			return err
		}
		if t[p], err = stampOf(fi); err != nil {
			return err
		}
		if fi.IsDir() {
			if err := d.stampBeneath(p, t, maxEntries); err != nil {
				return err
			}
		}
	}
	return nil
}
