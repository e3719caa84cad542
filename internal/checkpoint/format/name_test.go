package format

import (
	"testing"
	"time"
)

func TestNames(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	name := Name("web-node1", "kube-system", "my-app", ts)
	if name != "checkpoint-web-node1_kube-system-my-app-2026-01-02T03:04:05Z.tar" {
		t.Fatalf("name %q", name)
	}
	for _, tt := range []struct {
		name string
		ok   bool
		seq  int
	}{
		{name, true, 0},
		{WithSuffix(name, 2), true, 2},
		{"checkpoint-web_default-app-2026-01-02T03:04:05+02:00.tar", true, 0},
		{"../" + name, false, 0},
		{".tmp-abc-" + name, false, 0},
		{"checkpoint-web_default-app.tar", false, 0},
		{"checkpoint-Web_default-app-2026-01-02T03:04:05Z.tar", false, 0},
		{"checkpoint-web_default-app-2026-01-02T03:04:05Z.tar.gz", false, 0},
		{"checkpoint-web_default-app-2026-13-45T03:04:05Z.tar", false, 0},
	} {
		p, ok := ParseName(tt.name)
		if ok != tt.ok || ValidName(tt.name) != tt.ok || (ok && p.Seq != tt.seq) {
			t.Errorf("%q: ok=%v seq=%d, want %v %d", tt.name, ok, p.Seq, tt.ok, tt.seq)
		}
	}
}
