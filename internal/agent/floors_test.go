package agent

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// floors reads the floor table of docs/architecture.md: package → floor.
func floors(t *testing.T) map[string]int {
	t.Helper()
	data, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "## Floors")
	if start < 0 {
		t.Fatal("docs/architecture.md has no Floors section")
	}
	block := text[start:]
	open := strings.Index(block, "```\n")
	block = block[open+4:]
	block = block[:strings.Index(block, "```")]
	out := map[string]int{}
	floor := 0
	for _, line := range strings.Split(block, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if n, err := strconv.Atoi(fields[0]); err == nil {
			floor = n
		}
		for _, f := range fields {
			f = strings.TrimSuffix(f, ",")
			if strings.HasPrefix(f, "internal/") {
				out[f] = floor
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no packages in the floor table")
	}
	return out
}

// TestImportsOnlyGoDown: every package under internal/ has a floor in
// docs/architecture.md, and imports only packages on its floor or below.
func TestImportsOnlyGoDown(t *testing.T) {
	table := floors(t)
	const module = "knode.io/knode/"
	seen := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		pkg := "internal/" + filepath.ToSlash(strings.TrimPrefix(filepath.Dir(path), "../"))
		floor, ok := table[pkg]
		if !ok {
			if !seen[pkg] {
				t.Errorf("%s has no floor in docs/architecture.md", pkg)
			}
			seen[pkg] = true
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			target := strings.Trim(imp.Path.Value, `"`)
			if !strings.HasPrefix(target, module+"internal/") {
				continue
			}
			target = strings.TrimPrefix(target, module)
			if tf, ok := table[target]; ok && tf > floor {
				t.Errorf("%s (floor %d) imports %s (floor %d): an arrow running up", path, floor, target, tf)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPodsFilesStaySmall: no file of internal/pods over 500 lines (issue
// 13): the package where most pod changes land stays readable file by file.
func TestPodsFilesStaySmall(t *testing.T) {
	files, err := filepath.Glob("../pods/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no files of internal/pods: %v", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(data), "\n"); n > 500 {
			t.Errorf("%s has %d lines: split it by concern (at most 500)", f, n)
		}
	}
}
