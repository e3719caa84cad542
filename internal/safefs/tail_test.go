package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadTail(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(strings.Repeat("a", 100)+"END"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "f"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, size, err := d.ReadTail("f", 5)
	if err != nil || string(got) != "aaEND" || size != 103 {
		t.Fatalf("ReadTail(f, 5) = %q, %d, %v; want the last 5 bytes of 103", got, size, err)
	}
	got, _, err = d.ReadTail("f", 1000)
	if err != nil || len(got) != 103 {
		t.Fatalf("ReadTail(f, 1000) = %d bytes, %v; want the whole file", len(got), err)
	}
	if _, _, err := d.ReadTail("link", 5); !errors.Is(err, ErrSymlink) {
		t.Fatalf("ReadTail through a link: err = %v, want ErrSymlink", err)
	}
	if _, _, err := d.ReadTail("sub", 5); err == nil {
		t.Fatal("ReadTail of a directory succeeded")
	}
}
