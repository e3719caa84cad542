package pods

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"knode.io/knode/internal/safefs"
)

// subPathPod has an emptyDir "vol" that its app container mounts with subPath.
func subPathPod(sub string) *v1.Pod {
	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.Volumes = []v1.Volume{{Name: "vol", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "vol", MountPath: "/data", SubPath: sub}}
	return pod
}

// A link planted in the volume (by an init container, an earlier instance)
// that leads out of it keeps the container from being created, with the
// kubelet's reason, and nothing is made outside the volume.
func TestPlantedLinkRefusesTheContainer(t *testing.T) {
	for _, tt := range []struct{ link, target, sub string }{
		{"escape", "/", "escape"},
		{"d", "", "d/newdir"}, // target: a host directory made below
		{"up", "../../../../..", "up"},
	} {
		f := newFixture(t)
		host := t.TempDir()
		target := tt.target
		if target == "" {
			target = host
		}
		pod := subPathPod(tt.sub)
		vol := filepath.Join(PodDir(f.m.opts.RootDir, pod), "volumes", "kubernetes.io~empty-dir", "vol")
		if err := os.MkdirAll(vol, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(vol, tt.link)); err != nil {
			t.Fatal(err)
		}
		st := f.sync(f.worker(pod))
		if len(st.ContainerStatuses) != 1 || st.ContainerStatuses[0].State.Waiting == nil {
			t.Fatalf("subPath %q: status %+v", tt.sub, st.ContainerStatuses)
		}
		w := st.ContainerStatuses[0].State.Waiting
		if w.Reason != "CreateContainerConfigError" || !strings.Contains(w.Message, `subPath "`+tt.sub+`" leaves the volume`) {
			t.Errorf("subPath %q: waiting %q: %q", tt.sub, w.Reason, w.Message)
		}
		if strings.Contains(w.Message, f.m.opts.RootDir) {
			t.Errorf("the message shows the host's paths: %q", w.Message)
		}
		if _, total := f.count("app"); total != 0 {
			t.Errorf("subPath %q: %d containers created", tt.sub, total)
		}
		if entries, _ := os.ReadDir(host); len(entries) != 0 {
			t.Errorf("subPath %q: made %v outside the volume", tt.sub, entries)
		}
	}
}

// roAPIObjects answers every ConfigMap and Secret with one key.
type roAPIObjects struct{}

func (roAPIObjects) ConfigMap(context.Context, string, string) (map[string][]byte, error) {
	return map[string][]byte{"k": []byte("v")}, nil
}

func (roAPIObjects) Secret(context.Context, string, string) (map[string][]byte, error) {
	return map[string][]byte{"k": []byte("v")}, nil
}

func (roAPIObjects) ServiceAccountToken(context.Context, *v1.Pod, string, int64) (string, error) {
	return "token", nil
}

// API-object volumes are read-only in every container whatever the
// volumeMount says (CVE-2017-1002102); other volumes keep what it says.
func TestAPIVolumesAreReadOnly(t *testing.T) {
	f := newFixture(t)
	f.m.opts.APIObjects = roAPIObjects{}
	f.m.d.files.apiVols = newAPIVolumes(f.m.opts.APIObjects, f.m.d.node, time.Now, f.m.log)
	// Secret, projected and downwardAPI volumes are tmpfs mounts.
	t.Cleanup(func() { _ = safefs.UnmountAll(f.m.opts.RootDir) })
	pod := testPod(v1.RestartPolicyAlways)
	pod.Spec.Volumes = []v1.Volume{
		{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "c"}}}},
		{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "s"}}},
		{Name: "proj", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "c"}}}}}}},
		{Name: "dapi", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}},
		{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
	}
	c := &pod.Spec.Containers[0]
	for _, name := range []string{"cm", "sec", "proj", "dapi", "scratch"} {
		c.VolumeMounts = append(c.VolumeMounts, v1.VolumeMount{Name: name, MountPath: "/" + name, ReadOnly: false})
	}
	mounts, err := f.m.d.files.containerMounts(newPodFileState(), pod, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range mounts {
		if want := mt.ContainerPath != "/scratch"; mt.Readonly != want {
			t.Errorf("%s: read-only %v, want %v", mt.ContainerPath, mt.Readonly, want)
		}
	}
	if len(mounts) != 5 {
		t.Fatalf("mounts: %v", mounts)
	}
}

func TestHostPathTypes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(dir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	typ := func(t v1.HostPathType) *v1.HostPathType { return &t }
	for _, tt := range []struct {
		path    string
		typ     v1.HostPathType
		wantErr string
	}{
		{dir, v1.HostPathDirectory, ""},
		{filepath.Join(dir, "dirlink"), v1.HostPathDirectory, ""}, // an existing link is the host's own
		{file, v1.HostPathDirectory, "hostPath type check failed: " + file + " is not a directory"},
		{file, v1.HostPathFile, ""},
		{dir, v1.HostPathFile, "hostPath type check failed: " + dir + " is not a file"},
		{filepath.Join(dir, "missing"), v1.HostPathFile, "is not a file"},
		{"/dev/null", v1.HostPathCharDev, ""},
		{file, v1.HostPathCharDev, "is not a character device"},
		{file, v1.HostPathBlockDev, "is not a block device"},
		{file, v1.HostPathSocket, "is not a socket file"},
		{file, "Weird", "Weird is an invalid volume type"},
		{filepath.Join(dir, "new", "a", "b"), v1.HostPathDirectoryOrCreate, ""},
		{filepath.Join(dir, "dirlink", "viaLink"), v1.HostPathDirectoryOrCreate, ""},
		{filepath.Join(dir, "dangling", "x"), v1.HostPathDirectoryOrCreate, "create hostPath directory"},
		{filepath.Join(dir, "newfile"), v1.HostPathFileOrCreate, ""},
		{filepath.Join(dir, "noparent", "f"), v1.HostPathFileOrCreate, "no such file or directory"},
		{filepath.Join(dir, "dangling"), v1.HostPathFileOrCreate, "create hostPath file"},
		{dir + "/../etc", v1.HostPathDirectory, "must not contain '..'"},
	} {
		vol := &v1.Volume{Name: "h", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: tt.path, Type: typ(tt.typ)}}}
		err := checkHostPath(vol)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s (%s): %v, want %q", tt.path, tt.typ, err, tt.wantErr)
		}
	}
	for _, d := range []string{"new/a/b", "viaLink"} {
		if st, err := os.Stat(filepath.Join(dir, d)); err != nil || !st.IsDir() || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", d, st, err)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "newfile")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("newfile: %v", err)
	}
	// The dangling link's target was not created through it.
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !os.IsNotExist(err) {
		t.Errorf("a dangling link was followed: %v", err)
	}
}

func TestRecursiveReadOnlyAndBindOptions(t *testing.T) {
	f := newFixture(t)
	mode := func(m v1.RecursiveReadOnlyMode) *v1.RecursiveReadOnlyMode { return &m }
	bidi := v1.MountPropagationBidirectional
	for _, tt := range []struct {
		vm      v1.VolumeMount
		rro     bool
		wantErr string
	}{
		{vm: v1.VolumeMount{ReadOnly: true, RecursiveReadOnly: mode(v1.RecursiveReadOnlyEnabled)}, rro: true},
		{vm: v1.VolumeMount{ReadOnly: true, RecursiveReadOnly: mode(v1.RecursiveReadOnlyIfPossible)}},
		{vm: v1.VolumeMount{ReadOnly: true, RecursiveReadOnly: mode(v1.RecursiveReadOnlyDisabled)}},
		{vm: v1.VolumeMount{RecursiveReadOnly: mode(v1.RecursiveReadOnlyEnabled)}, wantErr: "recursiveReadOnly Enabled needs readOnly: true"},
		{vm: v1.VolumeMount{ReadOnly: true, RecursiveReadOnly: mode(v1.RecursiveReadOnlyEnabled), MountPropagation: &bidi}, wantErr: "needs mountPropagation None"},
		{vm: v1.VolumeMount{ReadOnly: true, RecursiveReadOnly: mode("Sometimes")}, wantErr: `unknown recursiveReadOnly "Sometimes"`},
		{vm: v1.VolumeMount{BindMountOptions: []string{"nosymfollow"}}, wantErr: "bindMountOptions are not supported"},
	} {
		pod := subPathPod("")
		tt.vm.Name, tt.vm.MountPath = "vol", "/data"
		pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{tt.vm}
		mounts, err := f.m.d.files.containerMounts(newPodFileState(), pod, &pod.Spec.Containers[0], nil)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%+v: %v, want %q", tt.vm, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%+v: %v", tt.vm, err)
		case !mounts[0].Readonly || mounts[0].RecursiveReadOnly != tt.rro:
			t.Errorf("%+v: mount %+v", tt.vm, mounts[0])
		}
	}
}

// A container the runtime would not create keeps no subPath bind.
func TestFailedCreateDropsSubPathBinds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	f := newFixture(t)
	t.Cleanup(func() { _ = safefs.UnmountAll(f.m.opts.RootDir) })
	pod := subPathPod("data")
	f.rt.InjectError("CreateContainer", errors.New("no room"))
	st := f.sync(f.worker(pod))
	if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "CreateContainerError" {
		t.Fatalf("status %+v", st.ContainerStatuses[0].State)
	}
	podDir := PodDir(f.m.opts.RootDir, pod)
	if mps, err := safefs.MountsUnder(podDir); err != nil || len(mps) != 0 {
		t.Fatalf("mounts left: %v %v", mps, err)
	}
	if _, err := os.Stat(filepath.Join(podDir, "volume-subpaths", "vol")); !os.IsNotExist(err) {
		t.Fatalf("bind targets left: %v", err)
	}
	// The next try binds again and the runtime gets the target.
	f.sync(f.worker(pod))
	if _, total := f.count("app"); total != 1 {
		t.Fatalf("containers: %d", total)
	}
	if mps, _ := safefs.MountsUnder(podDir); len(mps) != 1 || !strings.HasSuffix(mps[0], "/volume-subpaths/vol/app/0") {
		t.Fatalf("mounts: %v", mps)
	}
}

// Removing a gone pod's files detaches whatever is mounted below its
// directory first: a bind of a host directory inside an emptyDir (as a
// Bidirectional mount propagates) is not emptied.
func TestCleanupFilesLeavesMountedDirectories(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts need root")
	}
	f := newFixture(t)
	t.Cleanup(func() { _ = safefs.UnmountAll(f.m.opts.RootDir) })
	pod := subPathPod("")
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "keep"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	podDir := PodDir(f.m.opts.RootDir, pod)
	inside := filepath.Join(podDir, "volumes", "kubernetes.io~empty-dir", "vol", "b")
	if err := os.MkdirAll(inside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(host, inside, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	w := f.newWorker(pod.UID)
	w.lastPod = pod
	w.cleanupFiles()
	if data, err := os.ReadFile(filepath.Join(host, "keep")); err != nil || string(data) != "host" {
		t.Fatalf("the mounted directory was emptied: %q %v", data, err)
	}
	if _, err := os.Stat(podDir); !os.IsNotExist(err) {
		t.Fatalf("the pod's directory is still there: %v", err)
	}
}

func (roAPIObjects) ConfigMapData(context.Context, string, string) (map[string]string, error) {
	return map[string]string{"k": "v"}, nil
}
