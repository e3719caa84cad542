package format

import (
	"strings"
	"testing"
)

// FuzzArchiveName: any name the API accepts is a plain file name in the
// directory, never a path, and parses back to its parts.
func FuzzArchiveName(f *testing.F) {
	for _, s := range []string{
		"checkpoint-web_default-app-2026-01-02T03:04:05Z.tar",
		"checkpoint-web_default-app-2026-01-02T03:04:05Z-7.tar",
		"../../etc/passwd", ".tmp-x", "checkpoint-a_b-c-2026-01-02T03:04:05+05:30.tar", "checkpoint-\x00.tar",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !ValidName(name) {
			return
		}
		if strings.ContainsAny(name, "/\\\x00") || strings.HasPrefix(name, ".") {
			t.Fatalf("accepted unsafe name %q", name)
		}
		p, ok := ParseName(name)
		if !ok || p.Pod == "" || p.NSContainer == "" {
			t.Fatalf("valid name %q does not parse", name)
		}
	})
}
