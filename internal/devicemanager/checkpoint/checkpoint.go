// Package checkpoint reads and writes the device manager's checkpoint file,
// kubelet_internal_checkpoint, in the kubelet's own format, so a node can
// move between the kubelet and knode without losing device allocations.
//
// The kubelet's checksum is FNV-32a over a go-spew dump of the data whose
// text includes the Go package and type names; this package is therefore
// named checkpoint and its types are named as the kubelet's are.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// FileName is the checkpoint's name in the device plugins directory.
const FileName = "kubelet_internal_checkpoint"

// DevicesPerNUMA maps a NUMA node (-1 when unknown) to device IDs.
type DevicesPerNUMA map[int64][]string

// PodDevicesEntry is one container's allocation of one resource.
type PodDevicesEntry struct {
	PodUID        string
	ContainerName string
	ResourceName  string
	DeviceIDs     DevicesPerNUMA
	AllocResp     []byte
}

// checkpointData must keep this name and shape: it appears in the checksum.
type checkpointData struct {
	PodDeviceEntries  []PodDevicesEntry
	RegisteredDevices map[string][]string
}

// file is the JSON document on disk.
type file struct {
	Data     checkpointData
	Checksum uint32
}

// ErrCorrupt means the file's checksum does not match its data.
var ErrCorrupt = errors.New("device manager checkpoint is corrupt (checksum mismatch)")

// Checksum is the kubelet's: FNV-32a of spew's "%#v" dump with sorted keys.
func Checksum(entries []PodDevicesEntry, registered map[string][]string) uint32 {
	return checksum(checkpointData{PodDeviceEntries: entries, RegisteredDevices: registered})
}

// Read loads and verifies a checkpoint file.
func Read(path string) ([]PodDevicesEntry, map[string][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if got := checksum(f.Data); got != f.Checksum {
		return nil, nil, fmt.Errorf("%s: %w: recorded %d, computed %d", path, ErrCorrupt, f.Checksum, got)
	}
	return f.Data.PodDeviceEntries, f.Data.RegisteredDevices, nil
}

// Marshal encodes entries as the kubelet would write them.
func Marshal(entries []PodDevicesEntry, registered map[string][]string) ([]byte, error) {
	d := checkpointData{PodDeviceEntries: entries, RegisteredDevices: registered}
	return json.Marshal(file{Data: d, Checksum: checksum(d)})
}

// Write replaces the file atomically: a temporary file, fsync, rename.
func Write(path string, entries []PodDevicesEntry, registered map[string][]string) error {
	data, err := Marshal(entries, registered)
	if err != nil {
		return fmt.Errorf("encode device checkpoint: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+FileName+"-")
	if err != nil {
		return fmt.Errorf("write device checkpoint: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write device checkpoint: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync device checkpoint: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write device checkpoint: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("write device checkpoint: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace device checkpoint: %w", err)
	}
	return nil
}
