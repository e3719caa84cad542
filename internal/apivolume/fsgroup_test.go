package apivolume

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
)

// TestFSGroupOwnsTheVolume: with the pod's fsGroup every entry of a
// ConfigMap volume gets the group and group read (directories setgid),
// as after the kubelet's SetVolumeOwnership on a read-only volume; the
// volume so owned is not taken for tampered and rewritten at each
// refresh, and a walk that did not finish (the root's group unchanged) is
// done again.
func TestFSGroupOwnsTheVolume(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	var logs strings.Builder
	objs := &apiObjects{configMaps: map[string]map[string][]byte{"cm": {"a": []byte("1")}}}
	later := func() time.Time { return time.Now().Add(time.Hour) }
	vols := New(Config{Objects: objs, Now: later, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	st := NewPodState()
	podDir := podDirForTest(t)
	gid := int64(4321)
	pod := testPod(v1.Volume{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
		LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, DefaultMode: mode(0o400),
		Items: []v1.KeyToPath{{Key: "a", Path: "sub/a"}}}}})
	pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: &gid}
	write := func() string {
		t.Helper()
		dir, err := vols.Write(context.Background(), st, pod, &pod.Spec.Volumes[0], podDir)
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir := write()
	data, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]uint32{
		".": unix.S_ISGID | 0o755, data: unix.S_ISGID | 0o755, data + "/sub": unix.S_ISGID | 0o755, data + "/sub/a": 0o440,
	} {
		var s unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, rel), &s); err != nil {
			t.Fatal(err)
		}
		if s.Gid != uint32(gid) || s.Mode&0o7777 != want {
			t.Errorf("%s: gid %d mode %o, want %d %o", rel, s.Gid, s.Mode&0o7777, gid, want)
		}
	}
	for _, link := range []string{"..data", "sub"} {
		var s unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, link), &s); err != nil || s.Gid != uint32(gid) {
			t.Errorf("link %s: gid %d %v", link, s.Gid, err)
		}
	}
	write()
	write()
	if strings.Contains(logs.String(), "not as knode left it") {
		t.Fatalf("the owned volume was taken for tampered: %s", logs.String())
	}
	// An unfinished walk: the root lost its group.
	if err := os.Lchown(dir, -1, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(dir, data, "sub", "a"), -1, 0); err != nil {
		t.Fatal(err)
	}
	write()
	var s unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, data, "sub", "a"), &s); err != nil || s.Gid != uint32(gid) {
		t.Errorf("an unfinished walk was not done again: gid %d %v", s.Gid, err)
	}
}
