package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func lstatT(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSetGroupOwnershipAsTheKubelet: group and group permissions on every
// entry (setgid and search on directories), read-write or read-only, the
// root last; links get their own group and leave their targets alone,
// whether they point out of the tree or into it.
func TestSetGroupOwnershipAsTheKubelet(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	const gid = 4321
	for _, readOnly := range []bool{false, true} {
		d, volPath, host := tree(t)
		for name, mode := range map[string]os.FileMode{"private": 0o600, "shared": 0o644, "sub/run": 0o755} {
			if err := os.WriteFile(filepath.Join(volPath, name), []byte(name), mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(volPath, name), mode); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.Mkfifo(filepath.Join(volPath, "sub", "fifo"), 0o600); err != nil {
			t.Fatal(err)
		}
		if done, _ := d.GroupOwnershipDone(gid, readOnly); done {
			t.Fatal("done before the walk")
		}
		hostBefore := lstatT(t, filepath.Join(host, "secret"))
		hostDirBefore := lstatT(t, host)
		if err := d.SetGroupOwnership(gid, readOnly); err != nil {
			t.Fatal(err)
		}
		rw := uint32(0o660)
		if readOnly {
			rw = 0o440
		}
		for name, want := range map[string]uint32{
			"private": 0o600 | rw, "shared": 0o644 | rw, "sub/run": 0o755 | rw, "sub/fifo": 0o600 | rw,
			".": 0o755 | rw | 0o110 | unix.S_ISGID, "sub": 0o755 | rw | 0o110 | unix.S_ISGID,
		} {
			st := lstatT(t, filepath.Join(volPath, name))
			if st.Gid != gid || st.Mode&0o7777 != want {
				t.Errorf("readOnly %v: %s: gid %d mode %o, want %d %o", readOnly, name, st.Gid, st.Mode&0o7777, gid, want)
			}
		}
		for _, link := range []string{"abs", "up", "sub/deepup", "file-out", "in", "loop"} {
			if st := lstatT(t, filepath.Join(volPath, link)); st.Gid != gid {
				t.Errorf("link %s: gid %d", link, st.Gid)
			}
		}
		// Nothing the links point at outside changed.
		if st := lstatT(t, filepath.Join(host, "secret")); st.Gid != hostBefore.Gid || st.Mode != hostBefore.Mode {
			t.Errorf("the host file a link points at changed: gid %d mode %o", st.Gid, st.Mode)
		}
		if st := lstatT(t, host); st.Gid != hostDirBefore.Gid || st.Mode != hostDirBefore.Mode {
			t.Errorf("the host directory a link points at changed: gid %d mode %o", st.Gid, st.Mode)
		}
		if done, err := d.GroupOwnershipDone(gid, readOnly); err != nil || !done {
			t.Errorf("not done after the walk: %v", err)
		}
		if done, _ := d.GroupOwnershipDone(gid+1, readOnly); done {
			t.Error("done for another group")
		}
	}
}

// A mount below the tree (a bind of the same file system) is not the
// volume's: the walk leaves it and what it shows alone.
func TestSetGroupOwnershipStopsAtMounts(t *testing.T) {
	d, volPath, host, _ := treeWithBoundHost(t)
	fileMnt := filepath.Join(volPath, "over")
	if err := os.WriteFile(fileMnt, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(filepath.Join(host, "secret"), fileMnt, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountForTest(fileMnt) })
	before, beforeDir := lstatT(t, filepath.Join(host, "secret")), lstatT(t, host)
	if err := d.SetGroupOwnership(4321, false); err != nil {
		t.Fatal(err)
	}
	if st := lstatT(t, filepath.Join(host, "secret")); st.Gid != before.Gid || st.Mode != before.Mode {
		t.Errorf("a host file shown by a bind was changed: gid %d mode %o", st.Gid, st.Mode)
	}
	if st := lstatT(t, host); st.Gid != beforeDir.Gid || st.Mode != beforeDir.Mode {
		t.Errorf("a host directory shown by a bind was changed: gid %d mode %o", st.Gid, st.Mode)
	}
	if st := lstatT(t, filepath.Join(volPath, "sub")); st.Gid != 4321 {
		t.Errorf("the volume's own directory was not changed: gid %d", st.Gid)
	}
}

// A tree nested deeper than the walk holds directories open is refused
// with an error, never followed past the bound.
func TestSetGroupOwnershipBoundsDepth(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	root := t.TempDir()
	p := root
	for range maxOwnershipDepth + 2 {
		p = filepath.Join(p, "d")
		if err := unix.Mkdir(p, 0o755); err != nil {
			// Path too long for the test to build by name: go on from the last.
			t.Fatal(err)
		}
	}
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.SetGroupOwnership(4321, false)
	if !errors.Is(err, ErrOwnershipTooDeep) || strings.Count(err.Error(), "/d") > 20 {
		t.Errorf("SetGroupOwnership = %v, want ErrOwnershipTooDeep with a short path", err)
	}
	if st := lstatT(t, root); st.Gid == 4321 {
		t.Error("the root was changed although the walk did not finish")
	}
}
