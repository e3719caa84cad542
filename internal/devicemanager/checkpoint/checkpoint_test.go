package checkpoint

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// The file the real kubelet v1.37.2 wrote (testdata/README.md says how),
// copied byte for byte from the project's shared fixtures.
const fixture = "testdata/kubelet_internal_checkpoint"

func fixturePath(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(fixture); err != nil {
		t.Fatalf("the kubelet-written fixture is missing: %v", err)
	}
	return fixture
}

func TestReadsKubeletCheckpoint(t *testing.T) {
	path := fixturePath(t)
	entries, registered, err := Read(path)
	if err != nil {
		t.Fatalf("the kubelet's own checkpoint was refused: %v", err)
	}
	if len(entries) != 1 {
		t.Fatalf("entries: %+v", entries)
	}
	e := entries[0]
	if e.PodUID != "edb2d49ef9ff4e0843c4bf4d99ceb1c2" || e.ContainerName != "app" || e.ResourceName != "example.com/widget" ||
		strings.Join(e.DeviceIDs[-1], ",") != "widget-0,widget-3" {
		t.Fatalf("entry: %+v", e)
	}
	var resp pluginapi.ContainerAllocateResponse
	if err := proto.Unmarshal(e.AllocResp, &resp); err != nil {
		t.Fatalf("AllocResp: %v", err)
	}
	if resp.Envs["WIDGETS"] != "widget-3,widget-0" || len(resp.Devices) != 1 ||
		resp.Devices[0].HostPath != "/dev/null" || resp.Devices[0].ContainerPath != "/dev/widget0" || resp.Devices[0].Permissions != "rw" {
		t.Fatalf("allocation: %v", resp.String())
	}
	if strings.Join(registered["example.com/widget"], ",") != "widget-0,widget-1,widget-2,widget-3" {
		t.Fatalf("registered: %v", registered)
	}
	// Writing the same data gives the kubelet's checksum and its bytes.
	if got := Checksum(entries, registered); got != 1678989065 {
		t.Fatalf("checksum %d, want the kubelet's 1678989065", got)
	}
	want, _ := os.ReadFile(path)
	got, err := Marshal(entries, registered)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Fatalf("marshal differs from the kubelet's file:\n got %s\nwant %s", got, want)
	}
}

func TestRefusesWrongChecksum(t *testing.T) {
	data, err := os.ReadFile(fixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(data, []byte("widget-3\"]}"), []byte("widget-2\"]}"), 1)
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Read(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a tampered checkpoint was accepted: %v", err)
	}
}

func TestWriteRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	entries := []PodDevicesEntry{{PodUID: "u", ContainerName: "c", ResourceName: "r/x", DeviceIDs: DevicesPerNUMA{0: {"a"}, 1: {"b"}}, AllocResp: []byte{1, 2}}}
	if err := Write(path, entries, map[string][]string{"r/x": {"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	got, reg, err := Read(path)
	if err != nil || len(got) != 1 || len(reg["r/x"]) != 2 {
		t.Fatalf("%+v %v %v", got, reg, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}
