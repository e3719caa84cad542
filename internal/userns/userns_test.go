package userns

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func handlers(hs ...*runtimeapi.RuntimeHandler) Handlers {
	return func() []*runtimeapi.RuntimeHandler { return hs }
}

func handler(name string, userns bool) *runtimeapi.RuntimeHandler {
	return &runtimeapi.RuntimeHandler{Name: name, Features: &runtimeapi.RuntimeHandlerFeatures{UserNamespaces: userns}}
}

func pod(uid string, hostUsers *bool) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)}, Spec: v1.PodSpec{HostUsers: hostUsers}}
}

var no, yes = new(bool), func() *bool { b := true; return &b }()

func TestNewChecksTheNodeRange(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		err  string
	}{
		{"default range", Options{First: 65536, Length: 1<<32 - 65536, MaxPods: 110}, ""},
		{"length not a unit multiple", Options{IDsPerPod: 1000, First: 65536, Length: 65536}, "kubelet user namespace length 1000 is not a multiple of 65536"},
		{"first not aligned", Options{First: 70000, Length: 65536 * 4}, "kubelet user assigned ID 70000 is not a multiple of 65536"},
		{"host root range", Options{First: 0, Length: 65536 * 4}, "kubelet user assigned ID 0 must be greater or equal to 65536"},
		{"length not aligned", Options{First: 65536, Length: 65536*4 + 1}, "kubelet user assigned IDs length 262145 is not a multiple of 65536"},
		{"too few for max pods", Options{First: 65536, Length: 65536 * 4, MaxPods: 5}, "kubelet user assigned IDs are not enough to support 5 pods"},
		{"larger ranges", Options{IDsPerPod: 131072, First: 131072, Length: 131072 * 3, MaxPods: 3}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.PodsDir = t.TempDir()
			_, err := New(tc.o)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

func TestParseGetSubIDs(t *testing.T) {
	for _, tc := range []struct {
		in            string
		first, length uint32
		err           bool
	}{
		{"0: kubelet 65536 2147483648\n", 65536, 2147483648, false},
		{"0: kubelet 65536 2147483648\n1: kubelet 1 2\n", 0, 0, true},
		{"0: kubelet 65536\n", 0, 0, true},
		{"0: kubelet x 5\n", 0, 0, true},
		{"0: kubelet 5 4294967296\n", 0, 0, true},
	} {
		f, l, err := ParseGetSubIDs(tc.in)
		if (err != nil) != tc.err || f != tc.first || l != tc.length {
			t.Errorf("%q: %d %d %v", tc.in, f, l, err)
		}
	}
}

func TestHandlerSupports(t *testing.T) {
	hs := []*runtimeapi.RuntimeHandler{handler("", false), handler("runc", false), handler("runc-userns", true)}
	for _, tc := range []struct {
		list    []*runtimeapi.RuntimeHandler
		handler string
		want    bool
		err     string
	}{
		{nil, "", false, ""},
		{hs, "", false, ""},
		{hs, "runc-userns", true, ""},
		{hs, "kata", false, `the handler "kata" is not known`},
	} {
		got, err := HandlerSupports(tc.list, tc.handler)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
			t.Errorf("%q: %v %v", tc.handler, got, err)
		}
	}
}

func newManager(t *testing.T, dir string, ranges int) *Manager {
	t.Helper()
	m, err := New(Options{PodsDir: dir, First: 65536, Length: uint32(65536 * ranges), MaxPods: 1,
		Handlers: handlers(handler("", false), handler("userns", true))})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestGetOrCreateRefusesAHandlerWithoutUserNamespaces(t *testing.T) {
	m := newManager(t, t.TempDir(), 4)
	for _, tc := range []struct{ handler, err string }{
		{"", "can't set `spec.hostUsers: false`, runtime does not support user namespaces"},
		{"kata", "can't set `spec.hostUsers: false`, RuntimeClass handler \"kata\" does not support user namespaces: the handler \"kata\" is not known"},
	} {
		if _, err := m.GetOrCreate(pod("a", no), tc.handler); err == nil || err.Error() != tc.err {
			t.Errorf("handler %q: %v, want %q", tc.handler, err, tc.err)
		}
	}
	if _, ok := m.Allocated("a"); ok {
		t.Fatal("a refused pod got a range")
	}
	// A pod in the host's user namespace asks for nothing, on any handler.
	for _, hu := range []*bool{nil, yes} {
		if u, err := m.GetOrCreate(pod("b", hu), "kata"); u != nil || err != nil {
			t.Errorf("hostUsers %v: %v %v", hu, u, err)
		}
	}
}

func TestGetOrCreatePersistsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir, 3)
	u, err := m.GetOrCreate(pod("a", no), "userns")
	if err != nil {
		t.Fatal(err)
	}
	if u.Mode != runtimeapi.NamespaceMode_POD || len(u.Uids) != 1 || len(u.Gids) != 1 {
		t.Fatalf("userns %v", u)
	}
	from := u.Uids[0].HostId
	if from < 65536 || from%65536 != 0 || from > 3*65536 || u.Uids[0].Length != 65536 || u.Uids[0].ContainerId != 0 || u.Gids[0].HostId != from || u.Gids[0].Length != 65536 {
		t.Fatalf("mapping %v", u.Uids[0])
	}
	// The kubelet's file, in the pod's directory.
	data, err := os.ReadFile(filepath.Join(dir, "a", MappingsFile))
	if err != nil {
		t.Fatal(err)
	}
	var f map[string][]map[string]uint32
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{"hostId": from, "containerId": 0, "length": 65536}
	for _, k := range []string{"uidMappings", "gidMappings"} {
		if len(f[k]) != 1 || f[k][0]["hostId"] != want["hostId"] || f[k][0]["length"] != 65536 || f[k][0]["containerId"] != 0 {
			t.Fatalf("%s in %s", k, data)
		}
	}
	again, err := m.GetOrCreate(pod("a", no), "userns")
	if err != nil || again.Uids[0].HostId != from {
		t.Fatalf("second call: %v %v", again, err)
	}
	// A restarted manager gives the pod the same range, and others
	// never get it.
	m2 := newManager(t, dir, 3)
	if got, ok := m2.Allocated("a"); !ok || got != from {
		t.Fatalf("after restart: %d %v, want %d", got, ok, from)
	}
	seen := map[uint32]bool{from: true}
	for _, uid := range []string{"b", "c"} {
		u, err := m2.GetOrCreate(pod(uid, no), "userns")
		if err != nil {
			t.Fatal(err)
		}
		if seen[u.Uids[0].HostId] {
			t.Fatalf("pod %s got a range in use: %d", uid, u.Uids[0].HostId)
		}
		seen[u.Uids[0].HostId] = true
	}
	if _, err := m2.GetOrCreate(pod("d", no), "userns"); err == nil || !strings.Contains(err.Error(), "could not find an empty slot") {
		t.Fatalf("fourth pod in three ranges: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "d", MappingsFile)); !os.IsNotExist(err) {
		t.Fatalf("a refused pod has a file: %v", err)
	}
	// Released, the range serves the next pod and the file is gone.
	if err := m2.Release("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", MappingsFile)); !os.IsNotExist(err) {
		t.Fatalf("released file: %v", err)
	}
	u, err = m2.GetOrCreate(pod("d", no), "userns")
	if err != nil || u.Uids[0].HostId != from {
		t.Fatalf("after release: %v %v, want %d", u, err, from)
	}
}

func TestNewRefusesBadFiles(t *testing.T) {
	good := `{"uidMappings":[{"hostId":65536,"containerId":0,"length":65536}],"gidMappings":[{"hostId":65536,"containerId":0,"length":65536}]}`
	for _, tc := range []struct{ name, content, err string }{
		{"not json", "{", "invalid user namespace mappings file"},
		// Written durably, the file is never empty after a crash: empty,
		// it was tampered with, and its range must not be handed out again.
		{"empty", "", "invalid user namespace mappings file"},
		{"two mappings", `{"uidMappings":[{"hostId":65536,"length":65536},{"hostId":131072,"length":65536}],"gidMappings":[]}`, "no more than one mapping allowed"},
		{"uid and gid differ", `{"uidMappings":[{"hostId":65536,"length":65536}],"gidMappings":[{"hostId":131072,"length":65536}]}`, "GID and UID mapping should be identical"},
		{"root not mapped", `{"uidMappings":[{"hostId":65536,"containerId":1,"length":65536}],"gidMappings":[{"hostId":65536,"containerId":1,"length":65536}]}`, "UID 0 must be mapped"},
		{"wrong length", `{"uidMappings":[{"hostId":65536,"length":1000}],"gidMappings":[{"hostId":65536,"length":1000}]}`, "wrong user namespace length 1000"},
		{"out of range", `{"uidMappings":[{"hostId":6553600,"length":65536}],"gidMappings":[{"hostId":6553600,"length":65536}]}`, "id 6553600 is out of range"},
		{"host root", `{"uidMappings":[{"hostId":0,"length":65536}],"gidMappings":[{"hostId":0,"length":65536}]}`, "id 0 is out of range"},
		{"taken twice", good, "already taken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "a", MappingsFile), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.name == "taken twice" {
				os.MkdirAll(filepath.Join(dir, "b"), 0o755)
				os.WriteFile(filepath.Join(dir, "b", MappingsFile), []byte(good), 0o644)
			}
			_, err := New(Options{PodsDir: dir, First: 65536, Length: 65536 * 4})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

// TestReadNeverFollowsALink: a link planted as the pod's file is refused,
// not followed to a file elsewhere.
func TestReadNeverFollowsALink(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "userns")
	os.WriteFile(outside, []byte(`{"uidMappings":[{"hostId":65536,"length":65536}],"gidMappings":[{"hostId":65536,"length":65536}]}`), 0o644)
	os.MkdirAll(filepath.Join(dir, "a"), 0o755)
	if err := os.Symlink(outside, filepath.Join(dir, "a", MappingsFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{PodsDir: dir, First: 65536, Length: 65536 * 4}); err == nil {
		t.Fatal("a linked mappings file was read")
	}
}

func TestBitmapTakeFrom(t *testing.T) {
	b := newBitmap(130)
	for i := range 130 {
		if i != 70 && i != 3 {
			b.set(i)
		}
	}
	if i, ok := b.takeFrom(71); !ok || i != 3 {
		t.Fatalf("wrapped: %d %v", i, ok)
	}
	if i, ok := b.takeFrom(5); !ok || i != 70 {
		t.Fatalf("forward: %d %v", i, ok)
	}
	if i, ok := b.takeFrom(0); ok {
		t.Fatalf("full bitmap gave %d", i)
	}
	b.clear(129)
	if i, ok := b.takeFrom(100); !ok || i != 129 {
		t.Fatalf("last bit: %d %v", i, ok)
	}
	one := newBitmap(1)
	if i, ok := one.takeFrom(0); !ok || i != 0 {
		t.Fatal("one range")
	}
	if _, ok := one.takeFrom(0); ok {
		t.Fatal("one range twice")
	}
}

// TestRetainReleasesPodsGone: after a restart, ranges of pods that are
// neither declared nor running go, with their files; the others stay.
func TestRetainReleasesPodsGone(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir, 4)
	for _, uid := range []string{"a", "b", "c"} {
		if _, err := m.GetOrCreate(pod(uid, no), "userns"); err != nil {
			t.Fatal(err)
		}
	}
	// knode restarts: the ranges come back from the pods' files.
	m = newManager(t, dir, 4)
	if err := m.Retain(map[types.UID]bool{"b": true}); err != nil {
		t.Fatal(err)
	}
	for uid, kept := range map[string]bool{"a": false, "b": true, "c": false} {
		if _, ok := m.Allocated(types.UID(uid)); ok != kept {
			t.Errorf("pod %s: allocated %v, want %v", uid, ok, kept)
		}
		if _, err := os.Stat(filepath.Join(dir, uid, MappingsFile)); os.IsNotExist(err) == kept {
			t.Errorf("pod %s: file %v, want kept %v", uid, err, kept)
		}
	}
}
