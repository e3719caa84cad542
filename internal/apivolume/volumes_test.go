package apivolume

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podDirForTest is a pod directory whose tmpfs mounts are detached when the
// test ends (before the directory is removed).
func podDirForTest(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		for _, m := range mountsUnder(t, dir) {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
	})
	return dir
}

// mountsUnder lists the mount points at or below dir, from mountinfo.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	return out
}

func mode(m int32) *int32 { return &m }

func testPod(volumes ...v1.Volume) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1",
			Labels:      map[string]string{"app": "web", "tier": "front"},
			Annotations: map[string]string{"note": "say \"hi\"\n"}},
		Spec: v1.PodSpec{Volumes: volumes, Containers: []v1.Container{{Name: "c"}}},
	}
}

// podField stands for the pods package's resolver (the one env vars use).
func podField(pod *v1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels['app']":
		return pod.Labels["app"], nil
	}
	return "", os.ErrInvalid
}

func newVolumes(objs Objects) *Volumes {
	return New(Config{Objects: objs, PodField: podField, Now: time.Now,
		ResourceField: func(_ *v1.Pod, ref *v1.ResourceFieldSelector) (string, error) {
			return ref.ContainerName + ":" + ref.Resource, nil
		}})
}

func TestModesAreHonoured(t *testing.T) {
	objs := &apiObjects{
		configMaps: map[string]map[string][]byte{"cm": {"a": []byte("1"), "b": []byte("2")}},
		secrets:    map[string]map[string][]byte{"s": {"user": []byte("u"), "pass": []byte("p")}},
	}
	vols := newVolumes(objs)
	st := NewPodState()
	podDir := podDirForTest(t)
	cases := []struct {
		vol   v1.Volume
		modes map[string]os.FileMode
	}{
		{v1.Volume{Name: "cm-default", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}},
			map[string]os.FileMode{"a": 0o644, "b": 0o644}},
		{v1.Volume{Name: "cm-modes", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, DefaultMode: mode(0o400),
			Items: []v1.KeyToPath{{Key: "a", Path: "x/a"}, {Key: "b", Path: "b", Mode: mode(0o755)}}}}},
			map[string]os.FileMode{"x/a": 0o400, "b": 0o755}},
		{v1.Volume{Name: "secret", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{
			SecretName: "s", DefaultMode: mode(0o440), Items: []v1.KeyToPath{{Key: "user", Path: "user"}, {Key: "pass", Path: "pass", Mode: mode(0o400)}}}}},
			map[string]os.FileMode{"user": 0o440, "pass": 0o400}},
		{v1.Volume{Name: "secret-default", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "s"}}},
			map[string]os.FileMode{"user": 0o644, "pass": 0o644}},
		{v1.Volume{Name: "projected", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{DefaultMode: mode(0o600),
			Sources: []v1.VolumeProjection{
				{Secret: &v1.SecretProjection{LocalObjectReference: v1.LocalObjectReference{Name: "s"}, Items: []v1.KeyToPath{{Key: "user", Path: "s/user", Mode: mode(0o444)}}}},
				{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Items: []v1.KeyToPath{{Key: "a", Path: "cm/a"}}}},
				{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}, Mode: mode(0o640)}}}},
			}}}},
			map[string]os.FileMode{"s/user": 0o444, "cm/a": 0o600, "name": 0o640}},
		{v1.Volume{Name: "downward", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{DefaultMode: mode(0o400),
			Items: []v1.DownwardAPIVolumeFile{
				{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}},
				{Path: "uid", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.uid"}, Mode: mode(0o644)},
			}}}},
			map[string]os.FileMode{"name": 0o400, "uid": 0o644}},
	}
	for _, tc := range cases {
		pod := testPod(tc.vol)
		dir, err := vols.Write(context.Background(), st, pod, &pod.Spec.Volumes[0], podDir)
		if err != nil {
			t.Fatalf("%s: %v", tc.vol.Name, err)
		}
		for p, want := range tc.modes {
			fi, err := os.Stat(filepath.Join(dir, p))
			if err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: %s: mode %v %v, want %v", tc.vol.Name, p, fi.Mode().Perm(), err, want)
			}
		}
	}
}

// TestMemoryBackedVolumes: Secret, projected and downwardAPI volumes are on
// tmpfs, mounted once; ConfigMap volumes are not.
func TestMemoryBackedVolumes(t *testing.T) {
	objs := &apiObjects{configMaps: map[string]map[string][]byte{"cm": {"a": []byte("1")}},
		secrets: map[string]map[string][]byte{"s": {"k": []byte("v")}}}
	vols := newVolumes(objs)
	st := NewPodState()
	podDir := podDirForTest(t)
	pod := testPod(
		v1.Volume{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}},
		v1.Volume{Name: "s", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "s"}}},
		v1.Volume{Name: "proj", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{Secret: &v1.SecretProjection{LocalObjectReference: v1.LocalObjectReference{Name: "s"}}}}}}},
		v1.Volume{Name: "dapi", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}},
	)
	wantTmpfs := map[string]bool{"cm": false, "s": true, "proj": true, "dapi": true}
	for round := range 2 {
		for i := range pod.Spec.Volumes {
			vol := &pod.Spec.Volumes[i]
			dir, err := vols.Write(context.Background(), st, pod, vol, podDir)
			if err != nil {
				t.Fatal(err)
			}
			var fs unix.Statfs_t
			if err := unix.Statfs(dir, &fs); err != nil {
				t.Fatal(err)
			}
			if got := fs.Type == unix.TMPFS_MAGIC && len(mountsUnder(t, dir)) > 0; got != wantTmpfs[vol.Name] {
				t.Errorf("round %d: %s on tmpfs = %v, want %v", round, vol.Name, got, wantTmpfs[vol.Name])
			}
			if n := len(mountsUnder(t, dir)); wantTmpfs[vol.Name] && n != 1 {
				t.Errorf("round %d: %s has %d mounts, want 1", round, vol.Name, n)
			}
		}
	}
	// A rewrite after tampering happens on the same tmpfs.
	dir := filepath.Join(podDir, "volumes", "kubernetes.io~secret", "s")
	if err := os.Remove(filepath.Join(dir, "k")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "k"), []byte("planted"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := vols.Write(context.Background(), st, pod, &pod.Spec.Volumes[1], podDir); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "k")); err != nil || string(data) != "v" {
		t.Fatalf("secret after repair: %q %v", data, err)
	}
	if n := len(mountsUnder(t, dir)); n != 1 {
		t.Fatalf("%d mounts after the repair", n)
	}
}

func TestDownwardAPIVolume(t *testing.T) {
	vols := newVolumes(nil) // no API server: a static pod
	st := NewPodState()
	podDir := podDirForTest(t)
	pod := testPod(v1.Volume{Name: "podinfo", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{
		Items: []v1.DownwardAPIVolumeFile{
			{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			{Path: "ns", FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}},
			{Path: "uid", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.uid"}},
			{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "meta/annotations", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
			{Path: "app", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}},
			{Path: "cpu", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.cpu"}},
		}}}})
	dir, err := vols.Write(context.Background(), st, pod, &pod.Spec.Volumes[0], podDir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"name": "p", "ns": "ns", "uid": "uid-1", "app": "web", "cpu": "c:limits.cpu",
		"labels":           "app=\"web\"\ntier=\"front\"",
		"meta/annotations": `note="say \"hi\"\n"`,
	}
	check := func() {
		t.Helper()
		for p, w := range want {
			if data, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(data) != w {
				t.Errorf("%s = %q %v, want %q", p, data, err, w)
			}
		}
	}
	check()
	// Labels and annotations follow the pod on each refresh.
	pod.Labels["tier"] = "back"
	delete(pod.Annotations, "note")
	want["labels"], want["meta/annotations"] = "app=\"web\"\ntier=\"back\"", ""
	if _, err := vols.Write(context.Background(), st, pod, &pod.Spec.Volumes[0], podDir); err != nil {
		t.Fatal(err)
	}
	check()
}

func TestRefusals(t *testing.T) {
	objs := &apiObjects{configMaps: map[string]map[string][]byte{"cm": {"a": []byte("1")}}}
	cases := []struct {
		objs Objects
		vol  v1.Volume
		want string
	}{
		{nil, v1.Volume{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}},
			"needs the API server"},
		{objs, v1.Volume{Name: "../../etc", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}},
			"invalid name"},
		{objs, v1.Volume{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, DefaultMode: mode(0o4755)}}},
			"not between 0 and 0777"},
		{objs, v1.Volume{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"},
			Items: []v1.KeyToPath{{Key: "a", Path: "../../../etc/passwd"}}}}},
			"leaves its directory"},
		{objs, v1.Volume{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"},
			Items: []v1.KeyToPath{{Key: "missing", Path: "x"}}}}},
			`has no key "missing"`},
		{nil, v1.Volume{Name: "d", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "ip", FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}}}}},
			"not supported in a downwardAPI volume"},
		{nil, v1.Volume{Name: "d", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "cpu", ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.cpu"}}}}}},
			"needs containerName"},
		{nil, v1.Volume{Name: "d", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "..data", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}},
			`must not start with ".."`},
		{objs, v1.Volume{Name: "p", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Path: "b"}}}}}},
			"clusterTrustBundle projections are not supported"},
	}
	for _, tc := range cases {
		podDir := podDirForTest(t)
		pod := testPod(tc.vol)
		_, err := newVolumes(tc.objs).Write(context.Background(), NewPodState(), pod, &pod.Spec.Volumes[0], podDir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.vol.Name, err, tc.want)
		}
		if n := len(mountsUnder(t, podDir)); n != 0 {
			t.Errorf("%s: refused but mounted", tc.vol.Name)
		}
	}
}

// configMapVolume is one pod's ConfigMap volume "cm" of the ConfigMap
// "cm": write writes (or refreshes) it and returns its directory; logs
// holds what the volumes logged.
func configMapVolume(t *testing.T, objs Objects, now func() time.Time) (*Volumes, func() string, *strings.Builder) {
	logs := &strings.Builder{}
	vols := New(Config{Objects: objs, Now: now, Log: slog.New(slog.NewTextHandler(logs, nil))})
	st := NewPodState()
	podDir := podDirForTest(t)
	pod := testPod(v1.Volume{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}})
	write := func() string {
		t.Helper()
		dir, err := vols.Write(context.Background(), st, pod, &pod.Spec.Volumes[0], podDir)
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return vols, write, logs
}

// TestTamperingIsLogged: a rewrite of unchanged content (the volume was
// changed behind knode's back) is a warning; a change of the object is not.
func TestTamperingIsLogged(t *testing.T) {
	objs := &apiObjects{configMaps: map[string]map[string][]byte{"cm": {"a": []byte("1")}}}
	_, write, logs := configMapVolume(t, objs, time.Now)
	dir := write()
	objs.configMaps["cm"]["a"] = []byte("2")
	write()
	if strings.Contains(logs.String(), "WARN") {
		t.Fatalf("an object's change was reported as tampering:\n%s", logs.String())
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "planted")); err != nil {
		t.Fatal(err)
	}
	write()
	if !strings.Contains(logs.String(), `level=WARN msg="volume was not as knode left it`) {
		t.Fatalf("tampering not reported:\n%s", logs.String())
	}
}

// TestUnchangedVolumeIsNotReadBack: once a volume was found as written and
// settled, a refresh of unchanged content stats it instead of reading every
// file back; anything done to it since (a file replaced, an entry planted)
// shows in its stamp, and the volume is checked and repaired the long way.
func TestUnchangedVolumeIsNotReadBack(t *testing.T) {
	objs := &apiObjects{configMaps: map[string]map[string][]byte{"cm": {"a": []byte("1"), "b": []byte("2")}}}
	// A clock past the settling time of everything written now.
	later := func() time.Time { return time.Now().Add(time.Hour) }
	vols, write, logs := configMapVolume(t, objs, later)
	dir := write()
	write() // read back: as written, its stamp is kept
	if n := vols.readBacks.Load(); n != 2 {
		t.Fatalf("%d read-backs, want 2", n)
	}
	write()
	write()
	if n := vols.readBacks.Load(); n != 2 {
		t.Fatalf("an unchanged volume was read back again (%d read-backs)", n)
	}
	tampers := []struct {
		name string
		do   func() error
	}{
		{"a file replaced", func() error {
			data := filepath.Join(dir, "..data")
			target, err := os.Readlink(data)
			if err != nil {
				return err
			}
			f := filepath.Join(dir, target, "a")
			if err := os.WriteFile(f+".new", []byte("9"), 0o644); err != nil {
				return err
			}
			return os.Rename(f+".new", f)
		}},
		{"an entry planted", func() error { return os.Symlink("/etc", filepath.Join(dir, "planted")) }},
	}
	for _, tt := range tampers {
		logs.Reset()
		if err := tt.do(); err != nil {
			t.Fatal(err)
		}
		before := vols.readBacks.Load()
		write()
		if vols.readBacks.Load() != before+1 || !strings.Contains(logs.String(), "volume was not as knode left it") {
			t.Fatalf("%s: not checked and repaired:\n%s", tt.name, logs.String())
		}
		if data, err := os.ReadFile(filepath.Join(dir, "a")); err != nil || string(data) != "1" {
			t.Fatalf("%s: a = %q %v after the repair", tt.name, data, err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "planted")); !os.IsNotExist(err) {
			t.Fatalf("%s: the planted entry stayed", tt.name)
		}
		write() // read back after the repair: the stamp is kept again
	}
}
