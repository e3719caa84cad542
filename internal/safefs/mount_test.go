package safefs

import "golang.org/x/sys/unix"

func mountTmpfsForTest(dir string) error { return unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m") }

func unmountForTest(dir string) { _ = unix.Unmount(dir, unix.MNT_DETACH) }
