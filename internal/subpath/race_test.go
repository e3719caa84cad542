package subpath

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"knode.io/knode/internal/safefs"
)

// A sibling container swaps a directory in the middle of a subPath for a
// link to the host, and back, as fast as it can, while knode resolves (and
// creates the missing end of) the subPath again and again. Whatever the
// interleaving, every object knode gets is inside the volume and nothing is
// created outside it.
func TestResolveWhileAContainerSwapsLinks(t *testing.T) {
	w := newWorld(t)
	before := w.outside(t)
	mid := filepath.Join(w.vol, "a")
	if err := os.MkdirAll(filepath.Join(mid, "hd"), 0o777); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// a is always there, a directory or a link to the host, exchanged
		// atomically (renameat2 RENAME_EXCHANGE) with the links beside it.
		links := []string{filepath.Join(w.vol, "abs"), filepath.Join(w.vol, "rel")}
		if err := os.Symlink(w.host, links[0]); err != nil {
			t.Error(err)
			return
		}
		if err := os.Symlink("../host", links[1]); err != nil {
			t.Error(err)
			return
		}
		for i := 0; !stop.Load(); i++ {
			_ = unix.Renameat2(unix.AT_FDCWD, mid, unix.AT_FDCWD, links[i%2], unix.RENAME_EXCHANGE)
			_ = unix.Renameat2(unix.AT_FDCWD, mid, unix.AT_FDCWD, links[i%2], unix.RENAME_EXCHANGE)
		}
	}()
	resolved, refused := 0, 0
	for i := range 20000 {
		sub := "a/hd"
		if i%2 == 1 {
			sub = "a/hd/new" + strings.Repeat("x", i%7)
		}
		f, err := Resolve(w.dir, sub)
		if err != nil {
			refused++
			continue
		}
		resolved++
		real, err := os.Readlink(safefs.ProcPath(f))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(real, w.vol+"/") {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("subPath %q resolved to %s, outside the volume", sub, real)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d resolved inside the volume, %d refused", resolved, refused)
	if resolved == 0 || refused == 0 {
		t.Skipf("the swapper did not interleave with the resolutions (%d resolved, %d refused)", resolved, refused)
	}
	if after := w.outside(t); !slices.Equal(before, after) {
		t.Fatalf("the host's side changed:\nbefore %v\nafter  %v", before, after)
	}
}
