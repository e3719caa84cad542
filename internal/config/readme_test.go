package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestReadmeListsTheFlags: the README's configuration reference and the
// registered flags agree both ways, and every config file field it names
// is one knode implements.
func TestReadmeListsTheFlags(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "## Configuration reference")
	if start < 0 {
		t.Fatal("README has no configuration reference")
	}
	section := text[start:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	flagRE := regexp.MustCompile("`(--[a-z0-9-]+)`")
	fieldRE := regexp.MustCompile("`([a-zA-Z][a-zA-Z0-9.]*)`")
	documented := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		cols := strings.Split(line, "|")
		if !strings.HasPrefix(line, "| `--") || len(cols) < 4 {
			continue
		}
		for _, m := range flagRE.FindAllStringSubmatch(line, -1) {
			documented[strings.TrimPrefix(m[1], "--")] = true
		}
		for _, m := range fieldRE.FindAllStringSubmatch(cols[2], -1) {
			if !supportedFileFields[m[1]] {
				t.Errorf("README names config file field %q, which knode does not implement", m[1])
			}
		}
	}
	// Registered by the command itself, not by config.
	for _, own := range []string{"log-level", "log-format"} {
		delete(documented, own)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	(&Flags{}).AddFlags(fs)
	var missing []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !documented[f.Name] {
			missing = append(missing, f.Name)
		}
		delete(documented, f.Name)
	})
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("flags missing from the README's configuration reference: %v", missing)
	}
	for name := range documented {
		t.Errorf("README documents --%s, which is not registered", name)
	}
}

// TestReadmeLayoutListsEveryPackage: the README's Layout has a line for
// every package under internal/.
func TestReadmeLayoutListsEveryPackage(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "## Layout")
	if start < 0 {
		t.Fatal("README has no Layout")
	}
	layout := text[start:]
	if end := strings.Index(layout[1:], "\n## "); end >= 0 {
		layout = layout[:end+1]
	}
	seen := map[string]bool{}
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		pkg := "internal/" + filepath.ToSlash(strings.TrimPrefix(filepath.Dir(path), "../"))
		if !seen[pkg] && !strings.Contains(layout, "`"+pkg+"`") {
			t.Errorf("README's Layout has no line for %s", pkg)
		}
		seen[pkg] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
