// Package allocstate reads and writes the kubelet's in-place resize
// checkpoints, allocated_pods_state and actuated_pods_state in the root
// dir, in the kubelet's own format: the resources each pod's resizable
// containers were admitted with, and those last applied to each running
// container. Kept on disk so that a restart neither takes a waiting resize
// as admitted nor forgets one admitted but not yet applied, and so that a
// node moves between the kubelet and knode without losing either.
//
// The file is the kubelet's checkpoint manager's: a JSON document whose
// "data" is itself JSON text and whose "checksum" is FNV-32a over go-spew's
// rendering of that text ("(string)" followed by it).
package allocstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	"knode.io/knode/internal/safefs"
)

const (
	// Allocated is the kubelet's allocation manager's file: what each
	// pod's containers were admitted with.
	Allocated = "allocated_pods_state"
	// Actuated is the kubelet's runtime manager's file: what each running
	// container was last given.
	Actuated = "actuated_pods_state"
)

// maxSize bounds what is read: a few hundred bytes a container.
const maxSize = 32 << 20

// ErrCorrupt is the kubelet's "checkpoint is corrupted": the checksum does
// not match the data.
var ErrCorrupt = errors.New("checkpoint is corrupted")

// Pods are resources by pod UID and container name.
type Pods map[types.UID]map[string]v1.ResourceRequirements

// podResourceInfo is one pod's entry as the kubelet writes it. Knode keeps
// no pod-level resources (it refuses spec.resources) nor memory-backed
// emptyDir limits (it does not resize volumes): they are written empty,
// as the kubelet writes them for such pods.
type podResourceInfo struct {
	ContainerResources   map[string]v1.ResourceRequirements
	PodLevelResources    *v1.ResourceRequirements
	EmptyDirVolumeLimits map[string]*resource.Quantity
}

type checkpointData struct {
	Entries map[types.UID]podResourceInfo `json:"entries,omitempty"`
}

type checkpoint struct {
	Data     string `json:"data"`
	Checksum uint64 `json:"checksum"`
}

// checksum is the kubelet's checkpoint checksum of a string.
func checksum(data string) uint64 {
	h := fnv.New32a()
	h.Write([]byte("(string)"))
	h.Write([]byte(data))
	return uint64(h.Sum32())
}

// Marshal encodes pods as the kubelet writes them.
func Marshal(pods Pods) ([]byte, error) {
	d := checkpointData{Entries: make(map[types.UID]podResourceInfo, len(pods))}
	for uid, containers := range pods {
		d.Entries[uid] = podResourceInfo{ContainerResources: containers}
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("failed to serialize allocations for checkpointing: %w", err)
	}
	return json.Marshal(checkpoint{Data: string(data), Checksum: checksum(string(data))})
}

// Unmarshal decodes and verifies a file's content.
func Unmarshal(blob []byte) (Pods, error) {
	var cp checkpoint
	if err := json.Unmarshal(blob, &cp); err != nil {
		return nil, err
	}
	if checksum(cp.Data) != cp.Checksum {
		return nil, ErrCorrupt
	}
	var d checkpointData
	if err := json.Unmarshal([]byte(cp.Data), &d); err != nil {
		return nil, fmt.Errorf("failed to get pod resource information: %w", err)
	}
	pods := make(Pods, len(d.Entries))
	for uid, e := range d.Entries {
		containers := make(map[string]v1.ResourceRequirements, len(e.ContainerResources))
		for name, res := range e.ContainerResources {
			containers[name] = res
		}
		pods[uid] = containers
	}
	return pods, nil
}

// File is one checkpoint file beneath a directory knode owns (its root dir).
type File struct {
	dir, name string
	mu        sync.Mutex
	// last is what the file holds (its bytes, not its 32-bit checksum: a
	// resize whose checkpoint checksum collides with the previous one would
	// otherwise never be written), to skip a write that
	// would not change it, as the kubelet does.
	last []byte
	// written is set once the file holds what last says.
	written bool
}

// Open reads the checkpoint name in dir: a missing file holds nothing; one
// that cannot be read, decoded or verified is an error with the kubelet's
// message, on which the kubelet does not start (a wrong allocation would
// be applied to running containers).
func Open(dir, name string) (*File, Pods, error) {
	f := &File{dir: dir, name: name}
	pods, err := f.read()
	if err != nil {
		return nil, nil, fmt.Errorf("could not restore state from checkpoint: %w, please drain this node and delete pod resource information checkpoint file %q before restarting Kubelet",
			err, filepath.Join(dir, name))
	}
	return f, pods, nil
}

func (f *File) read() (Pods, error) {
	d, err := safefs.Open(f.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Pods{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	blob, _, err := d.ReadFile(f.name, maxSize)
	if errors.Is(err, fs.ErrNotExist) {
		return Pods{}, nil
	}
	if err != nil {
		return nil, err
	}
	pods, err := Unmarshal(blob)
	f.last, f.written = blob, err == nil
	return pods, err
}

// Write replaces the file with pods, atomically (a temporary file beneath
// the same directory, synced, renamed over it), readable by root alone.
// Nothing is written when the content would not change.
func (f *File) Write(pods Pods) error {
	blob, err := Marshal(pods)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.written && bytes.Equal(blob, f.last) {
		return nil
	}
	if err := os.MkdirAll(f.dir, 0o750); err != nil {
		return fmt.Errorf("write %s: %w", f.name, err)
	}
	d, err := safefs.Open(f.dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", f.name, err)
	}
	defer d.Close()
	if err := d.WriteFileSync(f.name, blob, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", f.name, err)
	}
	f.last, f.written = blob, true
	return nil
}
