package safefs

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// afterTick waits until the filesystem's clock has moved past stamp s's
// change time, so the next change cannot share it (the racy case Settled
// guards against).
func afterTick(t *testing.T, d *Dir, s Stamp) {
	t.Helper()
	scratch := filepath.Join(d.Name(), "..tick")
	for {
		if err := os.WriteFile(scratch, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(scratch)
		if err != nil {
			t.Fatal(err)
		}
		now, _ := stampOf(fi)
		os.Remove(scratch)
		if now.ctime != s.ctime {
			return
		}
	}
}

func TestStampSeesEveryChange(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	stamp := func() Stamp {
		s, err := d.Stamp("f")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	changes := []struct {
		name   string
		change func() error
	}{
		{"written in place, same size", func() error { return os.WriteFile(p, []byte("xyz"), 0o644) }},
		{"chmod", func() error { return os.Chmod(p, 0o600) }},
		{"replaced by rename", func() error {
			if err := os.WriteFile(p+".new", []byte("xyz"), 0o600); err != nil {
				return err
			}
			return os.Rename(p+".new", p)
		}},
		{"replaced by a link", func() error {
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("/etc/passwd", p)
		}},
	}
	for _, c := range changes {
		before := stamp()
		if before != stamp() {
			t.Fatalf("%s: two stamps of an unchanged file differ", c.name)
		}
		afterTick(t, d, before)
		if err := c.change(); err != nil {
			t.Fatal(err)
		}
		if stamp() == before {
			t.Errorf("%s: the stamp did not change", c.name)
		}
	}
}

func TestTreeStamp(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "b", "f"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a/b/f", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	before, err := d.TreeStamp(100)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 5 {
		t.Fatalf("%d entries stamped, want 5 (., a, a/b, a/b/f, l)", len(before))
	}
	if before.Settled(time.Now()) || !before.Settled(time.Now().Add(SettleTime+time.Second)) {
		t.Fatal("a tree just made is settled, or one made long ago is not")
	}
	if _, err := d.TreeStamp(3); err == nil {
		t.Fatal("a tree over the limit was stamped")
	}
	afterTick(t, d, before["a/b"])
	if err := os.WriteFile(filepath.Join(dir, "a", "b", "planted"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	after, err := d.TreeStamp(100)
	if err != nil {
		t.Fatal(err)
	}
	if after.Equal(before) {
		t.Fatal("an entry planted deep in the tree went unseen")
	}
}
