package integration

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// attackVolumes is a container script that tries to change each of its
// volume mounts (a new file, removing ..data), reports what the kernel said
// ("W <dir> <error>"), the modes it sees ("M <mode> <path>") and how each
// mount is backed ("MNT <mountpoint> <fstype>"), then stays up.
func attackVolumes(dirs []string, statPaths []string) string {
	var b strings.Builder
	for _, d := range dirs {
		fmt.Fprintf(&b, `(echo x > %[1]s/new) 2>&1 | sed "s|^|W %[1]s |"; [ -e %[1]s/new ] && echo "WRITABLE %[1]s"; `, d)
		fmt.Fprintf(&b, `(rm -f %[1]s/..data) 2>&1 | sed "s|^|W %[1]s |"; [ -e %[1]s/..data ] || echo "WRITABLE %[1]s ..data removed"; `, d)
		fmt.Fprintf(&b, `awk '$2 == "%[1]s" {print "MNT " $2 " " $3}' /proc/mounts; `, d)
	}
	for _, p := range statPaths {
		fmt.Fprintf(&b, `stat -L -c "M %%a %%n" %s; `, p)
	}
	b.WriteString("echo DONE; exec sleep 3600")
	return b.String()
}

// checkAttack reads the container's log: every write was refused with
// EROFS, the modes are the asked ones, the memory-backed mounts are tmpfs.
func checkAttack(t *testing.T, log string, dirs []string, modes map[string]string, tmpfs map[string]bool) {
	t.Helper()
	if strings.Contains(log, "WRITABLE") {
		t.Fatalf("a container changed its API-object volume:\n%s", log)
	}
	for _, d := range dirs {
		refused := regexp.MustCompile(`(?m) W `+regexp.QuoteMeta(d)+` .*Read-only file system$`).FindAllString(log, -1)
		if len(refused) != 2 {
			t.Fatalf("%s: want both writes refused with EROFS, got %q in:\n%s", d, refused, log)
		}
		mnt := regexp.MustCompile(`(?m) MNT ` + regexp.QuoteMeta(d) + ` (\S+)$`).FindStringSubmatch(log)
		if mnt == nil || (mnt[1] == "tmpfs") != tmpfs[d] {
			t.Fatalf("%s: mount %q, want tmpfs = %v:\n%s", d, mnt, tmpfs[d], log)
		}
	}
	for p, m := range modes {
		if !strings.Contains(log, " M "+m+" "+p+"\n") {
			t.Fatalf("%s: want mode %s:\n%s", p, m, log)
		}
	}
}

// outsideTree is a directory beside the pod's directories standing for the
// host's files; snapshotTree describes it for a later comparison.
func outsideTree(t *testing.T, n *node) string {
	t.Helper()
	dir := filepath.Join(n.dir, "outside")
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"canary": "host file", "etc/passwd": "root:x:0:0"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func snapshotTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			desc += " " + string(data)
		} else if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// plantLinks does, on the host side of a volume, what a compromised
// container (or one that could write there) would: ..data pointed outside,
// the timestamped directory replaced by a link outside, a key replaced by a
// link to a host file, a nested directory replaced by a link, junk.
func plantLinks(t *testing.T, volDir, outside string, relativeData bool, key, nested string) {
	t.Helper()
	ts, err := os.Readlink(filepath.Join(volDir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	dataTarget := outside
	if relativeData {
		if dataTarget, err = filepath.Rel(volDir, outside); err != nil {
			t.Fatal(err)
		}
	}
	steps := []error{
		os.RemoveAll(filepath.Join(volDir, ts)),
		os.Symlink(outside, filepath.Join(volDir, ts)),
		os.Remove(filepath.Join(volDir, "..data")),
		os.Symlink(dataTarget, filepath.Join(volDir, "..data")),
		os.Remove(filepath.Join(volDir, key)),
		os.Symlink(filepath.Join(outside, "canary"), filepath.Join(volDir, key)),
		os.Symlink(outside, filepath.Join(volDir, "evil")),
		os.Symlink(filepath.Join(outside, "etc"), filepath.Join(volDir, "..2020_01_01_00_00_00.planted")),
	}
	if nested != "" {
		steps = append(steps, os.Remove(filepath.Join(volDir, nested)), os.Symlink(filepath.Join(outside, "etc"), filepath.Join(volDir, nested)))
	}
	for _, err := range steps {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// layoutRepaired reports whether volDir holds knode's layout again: ..data
// to a timestamped directory that is a real directory, the top-level keys
// as links into ..data, nothing else.
func layoutRepaired(volDir string, tops ...string) bool {
	ts, err := os.Readlink(filepath.Join(volDir, "..data"))
	if err != nil || strings.Contains(ts, "/") || !strings.HasPrefix(ts, "..") {
		return false
	}
	if fi, err := os.Lstat(filepath.Join(volDir, ts)); err != nil || !fi.IsDir() {
		return false
	}
	entries, err := os.ReadDir(volDir)
	if err != nil {
		return false
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := append([]string{"..data", ts}, tops...)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		return false
	}
	for _, top := range tops {
		if target, err := os.Readlink(filepath.Join(volDir, top)); err != nil || target != "..data/"+top {
			return false
		}
	}
	return true
}

func execOut(n *node, id string, cmd ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _, err := n.cri.ExecSync(ctx, id, cmd, 5*time.Second)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(out)
}

// TestAPIObjectVolumesAreReadOnlyOnTmpfsAndRepaired: a pod's ConfigMap,
// Secret and downwardAPI volumes refuse writes from the container even
// with readOnly: false, the Secret and downwardAPI ones are on tmpfs, the
// modes asked for are the modes seen, and links planted on the host side
// between refreshes are repaired in place without touching anything outside.
func TestAPIObjectVolumesAreReadOnlyOnTmpfsAndRepaired(t *testing.T) {
	t.Parallel()
	cp := newControlPlane(t)
	n := newNode(t)
	kc := cp.nodeKubeconfig(t, n)
	n.startKnode("--kubeconfig", kc, "--sync-frequency", "2s")
	ctx := context.Background()
	// (No controller-manager runs: the default ServiceAccount is made here.)
	cp.defaultServiceAccount(t)
	if _, err := cp.core.ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data: map[string]string{"a": "first", "b": "nested"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.core.Secrets("default").Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"},
		Data: map[string][]byte{"password": []byte("s3cret")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mode := func(m int32) *int32 { return &m }
	dirs := []string{"/cm", "/sec", "/dapi"}
	grace := int64(1)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "attacker", Namespace: "default", Labels: map[string]string{"app": "attacker"}},
		Spec: v1.PodSpec{NodeName: n.name, TerminationGracePeriodSeconds: &grace, AutomountServiceAccountToken: new(bool),
			Volumes: []v1.Volume{
				{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
					LocalObjectReference: v1.LocalObjectReference{Name: "settings"}, DefaultMode: mode(0o600),
					Items: []v1.KeyToPath{{Key: "a", Path: "a", Mode: mode(0o640)}, {Key: "b", Path: "dir/b"}}}}},
				{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "creds", DefaultMode: mode(0o400)}}},
				{Name: "dapi", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
					{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
			},
			Containers: []v1.Container{{Name: "main", Image: busybox,
				Command: []string{"sh", "-c", attackVolumes(dirs, []string{"/cm/a", "/cm/dir/b", "/sec/password", "/dapi/labels"})},
				VolumeMounts: []v1.VolumeMount{
					{Name: "cm", MountPath: "/cm", ReadOnly: false},
					{Name: "sec", MountPath: "/sec", ReadOnly: false},
					{Name: "dapi", MountPath: "/dapi", ReadOnly: false},
				}}}}}
	created, err := cp.core.Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(n.logs, "default_attacker_"+string(created.UID), "main")
	var log string
	n.eventually(90*time.Second, "the attacker's report in its log", func() bool {
		matches, _ := filepath.Glob(filepath.Join(logDir, "*.log"))
		if len(matches) == 0 {
			return false
		}
		data, _ := os.ReadFile(matches[0])
		log = string(data)
		return strings.Contains(log, "DONE")
	})
	checkAttack(t, log, dirs,
		map[string]string{"/cm/a": "640", "/cm/dir/b": "600", "/sec/password": "400", "/dapi/labels": "644"},
		map[string]bool{"/cm": false, "/sec": true, "/dapi": true})

	podDir := filepath.Join(n.rootDir(), "pods", string(created.UID), "volumes")
	volDirs := map[string]string{
		"cm":   filepath.Join(podDir, "kubernetes.io~configmap", "cm"),
		"sec":  filepath.Join(podDir, "kubernetes.io~secret", "sec"),
		"dapi": filepath.Join(podDir, "kubernetes.io~downward-api", "dapi"),
	}
	for _, name := range []string{"sec", "dapi"} {
		var fs unix.Statfs_t
		if err := unix.Statfs(volDirs[name], &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
			t.Fatalf("host side of %s: filesystem %#x, %v; want tmpfs", name, fs.Type, err)
		}
	}

	// Tampering between refreshes, then a ConfigMap change: the next
	// refreshes put everything back, inside the volumes only.
	outside := outsideTree(t, n)
	before := snapshotTree(t, outside)
	plantLinks(t, volDirs["cm"], outside, true, "a", "dir")
	plantLinks(t, volDirs["sec"], outside, false, "password", "")
	plantLinks(t, volDirs["dapi"], outside, true, "labels", "")
	cm, err := cp.core.ConfigMaps("default").Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["a"] = "second"
	if _, err := cp.core.ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var id string
	n.eventually(30*time.Second, "the attacker's container id", func() bool {
		list, err := n.cri.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": string(created.UID)}})
		if err == nil && len(list) == 1 {
			id = list[0].Id
		}
		return id != ""
	})
	want := map[string]string{"/cm/a": "second", "/cm/dir/b": "nested", "/sec/password": "s3cret", "/dapi/labels": `app="attacker"`}
	n.eventually(60*time.Second, "the volumes repaired, seen from the container and the host", func() bool {
		for p, w := range want {
			if got := execOut(n, id, "cat", p); got != w {
				return false
			}
		}
		return layoutRepaired(volDirs["cm"], "a", "dir") && layoutRepaired(volDirs["sec"], "password") && layoutRepaired(volDirs["dapi"], "labels")
	})
	if after := snapshotTree(t, outside); !maps.Equal(after, before) {
		t.Fatalf("the refresh changed files outside the volumes:\n%v\nwas\n%v", after, before)
	}
	// The tmpfs stayed (no second mount, nothing written to disk).
	for _, name := range []string{"sec", "dapi"} {
		var fs unix.Statfs_t
		if err := unix.Statfs(volDirs[name], &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
			t.Fatalf("host side of %s after the repair: filesystem %#x, %v", name, fs.Type, err)
		}
	}
}

// TestDownwardAPIVolumeOfAStaticPod: without an API server, a static pod's
// downwardAPI volume is written (it was refused), read-only for the
// container whatever the pod says, on tmpfs, with its modes, and repaired
// in place after tampering.
func TestDownwardAPIVolumeOfAStaticPod(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	dirs := []string{"/podinfo"}
	script := attackVolumes(dirs, []string{"/podinfo/labels", "/podinfo/meta/name", "/podinfo/mem"})
	n.writeManifest("dapi.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: dapi
  namespace: default
  labels: {app: web, tier: front}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 2
  volumes:
  - name: podinfo
    downwardAPI:
      defaultMode: 288
      items:
      - path: labels
        fieldRef: {fieldPath: metadata.labels}
      - path: meta/name
        fieldRef: {fieldPath: metadata.name}
        mode: 384
      - path: mem
        resourceFieldRef: {containerName: main, resource: limits.memory, divisor: 1Mi}
  containers:
  - name: main
    image: %s
    resources: {limits: {memory: 64Mi}}
    command: ["sh", "-c", %q]
    volumeMounts:
    - name: podinfo
      mountPath: /podinfo
      readOnly: false
`, busybox, script))
	n.startKnode("--sync-frequency", "2s")
	c := n.waitRunning("default", "dapi", "main")
	var log string
	n.eventually(30*time.Second, "the report in the container's log", func() bool {
		log = n.logFile("default", "dapi", "main")
		return strings.Contains(log, "DONE")
	})
	checkAttack(t, log, dirs, map[string]string{"/podinfo/labels": "440", "/podinfo/meta/name": "600", "/podinfo/mem": "440"},
		map[string]bool{"/podinfo": true})
	name := n.podName("dapi")
	want := map[string]string{"/podinfo/meta/name": name, "/podinfo/mem": "64"}
	for p, w := range want {
		if got := execOut(n, c.Id, "cat", p); got != w {
			t.Fatalf("%s = %q, want %q", p, got, w)
		}
	}
	if labels := execOut(n, c.Id, "cat", "/podinfo/labels"); !strings.Contains(labels, `app="web"`) || !strings.Contains(labels, `tier="front"`) {
		t.Fatalf("labels file: %q", labels)
	}

	volDir := filepath.Join(n.rootDir(), "pods", c.Labels["io.kubernetes.pod.uid"], "volumes", "kubernetes.io~downward-api", "podinfo")
	outside := outsideTree(t, n)
	before := snapshotTree(t, outside)
	plantLinks(t, volDir, outside, true, "mem", "meta")
	n.eventually(30*time.Second, "the downwardAPI volume repaired", func() bool {
		for p, w := range want {
			if execOut(n, c.Id, "cat", p) != w {
				return false
			}
		}
		return layoutRepaired(volDir, "labels", "meta", "mem")
	})
	if after := snapshotTree(t, outside); !maps.Equal(after, before) {
		t.Fatalf("the refresh changed files outside the volume:\n%v\nwas\n%v", after, before)
	}
}
