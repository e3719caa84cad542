package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFSGroupVolumes: a pod's fsGroup owns its emptyDir (disk and memory)
// and downwardAPI volumes as the kubelet's SetVolumeOwnership leaves them
// (group, setgid, group read-write or read), and the container is in the
// group. When the walk runs over an emptyDir the container has written
// (its set-up mark gone, as for a pod set up by a knode without it), links
// the container planted to host files and directories are not followed:
// the host's objects keep their group and mode.
func TestFSGroupVolumes(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	hostDir := filepath.Join(n.dir, "host-dir")
	hostFile := filepath.Join(hostDir, "secret")
	if err := os.MkdirAll(hostDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hostFile, []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.writeManifest("owned.yaml", securityPod("owned", busybox, `  securityContext: {runAsUser: 1001, fsGroup: 3000}
  volumes:
  - {name: data, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory}}
  - name: info
    downwardAPI:
      items: [{path: name, fieldRef: {fieldPath: metadata.name}}]
`, `    volumeMounts:
    - {name: data, mountPath: /data}
    - {name: mem, mountPath: /mem}
    - {name: info, mountPath: /info}
`))
	n.startKnode()

	if got := n.execIn("owned", "main", "id", "-G"); !strings.Contains(" "+got+" ", " 3000 ") {
		t.Errorf("fsGroup is not among the container's groups: %q", got)
	}
	got := n.execIn("owned", "main", "sh", "-c", "stat -c '%g %a' /data /mem /info /info/..data/name; touch /data/new; stat -c '%g' /data/new")
	want := "3000 2777\n3000 2777\n3000 2755\n3000 644\n3000"
	if got != want {
		t.Errorf("inside the container:\n%s\nwant\n%s", got, want)
	}

	// The container plants links to the host's objects and a file of
	// another group; then its emptyDir is walked again.
	n.execIn("owned", "main", "sh", "-c", "ln -s "+hostFile+" /data/evil-file; ln -s "+hostDir+" /data/evil-dir; mkdir -p /data/deep/er && ln -s "+hostDir+" /data/deep/er/evil; touch /data/before && chgrp 0 /data/before")
	if got := n.execIn("owned", "main", "stat", "-c", "%g", "/data/before"); got != "0" {
		t.Fatalf("the container could not change its file's group: %q", got)
	}
	uid := n.podUID("default", "owned")
	ready := filepath.Join(n.rootDir(), "pods", uid, "plugins", "kubernetes.io~empty-dir", "data", "ready")
	if _, err := os.Stat(ready); err != nil {
		t.Fatalf("no set-up mark: %v", err)
	}
	if err := os.Remove(ready); err != nil {
		t.Fatal(err)
	}
	first := n.waitRunning("default", "owned", "main")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.cri.StopContainer(ctx, first.Id, 0); err != nil {
		t.Fatal(err)
	}
	n.eventually(90*time.Second, "the container restarted", func() bool {
		c := n.running("default", "owned", "main")
		return c != nil && c.Id != first.Id
	})
	if got := n.execIn("owned", "main", "stat", "-c", "%g", "/data/before"); got != "3000" {
		t.Errorf("the emptyDir was not walked again: /data/before has group %q", got)
	}
	for _, p := range []string{hostFile, hostDir} {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Gid != 0 || st.Mode&0o7777 != map[string]uint32{hostFile: 0o600, hostDir: 0o700}[p] {
			t.Errorf("host %s was changed through a planted link: gid %d mode %o", p, st.Gid, st.Mode&0o7777)
		}
	}
	vol := n.emptyDir(uid, "data")
	for _, link := range []string{"evil-file", "evil-dir", "deep/er/evil"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(vol, link), &st); err != nil || st.Gid != 3000 {
			t.Errorf("planted link %s: gid %d %v, want the link itself in group 3000", link, st.Gid, err)
		}
	}
}
