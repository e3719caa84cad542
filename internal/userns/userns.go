// Package userns gives each pod with `hostUsers: false` its own range of
// host user and group IDs, as the kubelet's user namespace manager
// (pkg/kubelet/userns) does, so that root in one pod is an unprivileged ID
// on the host and in no other pod.
//
// The node's IDs (getsubids for the user "kubelet", or every ID from
// idsPerPod up) are cut into ranges of idsPerPod (65536 by default); a pod
// gets a free one, picked at random as the kubelet's allocator does, mapped
// from ID 0 in the pod, the same for users and groups. The range is kept in
// the pod's directory (<root-dir>/pods/<uid>/userns, the kubelet's file and
// format) before the runtime hears of it, and every file is read again at
// start, so a restarted knode gives a running pod its range again and no
// other pod gets it. The range is freed with the pod's directory.
//
// A pod asks for a user namespace only through a runtime handler that
// reports support for it (CRI Status: containerd says so when its runc
// has idmapped mounts); otherwise its sandbox is refused with the
// kubelet's message.
package userns

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"knode.io/knode/internal/podpath"
	"knode.io/knode/internal/safefs"
)

const (
	// UnitLength is what a pod's range must be a multiple of (the
	// kubelet's userNsUnitLength).
	UnitLength = 65536
	// DefaultIDsPerPod is the kubelet's default userNamespaces.idsPerPod.
	DefaultIDsPerPod = 65536
	// MappingsFile is the kubelet's file in the pod's directory.
	MappingsFile = "userns"
	// kubeletUser is the user whose subordinate IDs the node gives pods.
	kubeletUser = "kubelet"
	// maxFileSize bounds a mappings file: knode writes about 120 bytes.
	maxFileSize = 4096
)

// Handlers gives the runtime's handlers as its last CRI Status reported
// them.
type Handlers func() []*runtimeapi.RuntimeHandler

// Options configure a Manager.
type Options struct {
	// PodsDir holds the pods' directories (<root-dir>/pods).
	PodsDir string
	// IDsPerPod is each pod's range length (0: DefaultIDsPerPod).
	IDsPerPod uint32
	// First and Length are the node's IDs for pods; Length 0 asks
	// NodeRange (getsubids, or the kubelet's default).
	First, Length uint32
	// MaxPods is the node's pod capacity: the IDs must cover as many pods.
	MaxPods int
	// Handlers tells which runtime handlers support user namespaces.
	Handlers Handlers
}

// Manager hands out and keeps the pods' ranges.
type Manager struct {
	podsDir  string
	length   uint32
	off      int
	handlers Handlers

	mu     sync.Mutex
	used   bitmap
	usedBy map[types.UID]uint32
	// fromDisk are the pods whose ranges New read from their files and
	// that no sandbox has asked for since: the only ones Retain may free.
	// A range handed out (or asked for again) while knode runs is freed by
	// Release once the pod is gone, never by Retain, whose keep set may
	// predate the pod.
	fromDisk map[types.UID]bool
}

// New checks the node's IDs as the kubelet does and records the ranges
// that the pods' directories already hold. A mappings file it cannot read
// stops it, as it stops the kubelet: giving that pod's range to another
// pod would let the two share their IDs.
func New(o Options) (*Manager, error) {
	length := o.IDsPerPod
	if length == 0 {
		length = DefaultIDsPerPod
	}
	if length%UnitLength != 0 {
		return nil, fmt.Errorf("kubelet user namespace length %v is not a multiple of %d", length, UnitLength)
	}
	first, total := o.First, o.Length
	if total == 0 {
		var err error
		if first, total, err = NodeRange(length); err != nil {
			return nil, fmt.Errorf("kubelet mappings: %w", err)
		}
	}
	if first%length != 0 {
		return nil, fmt.Errorf("kubelet user assigned ID %v is not a multiple of %v", first, length)
	}
	if first < length {
		// ID 0 of the host must never be a pod's.
		return nil, fmt.Errorf("kubelet user assigned ID %v must be greater or equal to %v", first, length)
	}
	if total%length != 0 {
		return nil, fmt.Errorf("kubelet user assigned IDs length %v is not a multiple of %v", total, length)
	}
	if int64(total/length) < int64(o.MaxPods) {
		return nil, fmt.Errorf("kubelet user assigned IDs are not enough to support %v pods", o.MaxPods)
	}
	m := &Manager{
		podsDir:  o.PodsDir,
		length:   length,
		off:      int(first / length),
		handlers: o.Handlers,
		used:     newBitmap(int(total / length)),
		usedBy:   map[types.UID]uint32{},
		fromDisk: map[types.UID]bool{},
	}
	names, err := os.ReadDir(o.PodsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read pods from disk: %w", err)
	}
	for _, e := range names {
		uid := types.UID(e.Name())
		if !e.IsDir() || len(podpath.UID(string(uid))) > 0 {
			continue
		}
		mapping, err := m.read(uid)
		if err != nil {
			return nil, fmt.Errorf("record pod mappings for existing pod %q: %w", uid, err)
		}
		if mapping == nil {
			continue
		}
		if err := m.record(uid, mapping); err != nil {
			return nil, fmt.Errorf("record pod mappings for existing pod %q: %w", uid, err)
		}
		m.fromDisk[uid] = true
	}
	return m, nil
}

// NodeRange is the node's IDs for pods, as the kubelet finds them: the
// subordinate IDs of the user "kubelet" from getsubids when that user
// exists and getsubids is installed (users and groups must agree), else
// every ID from idsPerPod to the last.
func NodeRange(idsPerPod uint32) (first, length uint32, err error) {
	defFirst, defLength := idsPerPod, uint32((1<<32)-uint64(idsPerPod))
	if _, err := user.Lookup(kubeletUser); err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return defFirst, defLength, nil
		}
		return 0, 0, err
	}
	cmd, err := exec.LookPath("getsubids")
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return defFirst, defLength, nil
		}
		return 0, 0, err
	}
	uids, err := exec.Command(cmd, kubeletUser).Output()
	if err != nil {
		return 0, 0, fmt.Errorf("error retrieving additional uids for user %q: %w", kubeletUser, err)
	}
	gids, err := exec.Command(cmd, "-g", kubeletUser).Output()
	if err != nil {
		return 0, 0, fmt.Errorf("error retrieving additional gids for user %q", kubeletUser)
	}
	if string(uids) != string(gids) {
		return 0, 0, fmt.Errorf("mismatched subuids and subgids for user %q", kubeletUser)
	}
	return ParseGetSubIDs(string(uids))
}

// ParseGetSubIDs reads getsubids' one line ("0: kubelet 65536 4294901760")
// into the first ID and the count.
func ParseGetSubIDs(out string) (first, length uint32, err error) {
	lines := strings.Split(strings.Trim(out, "\n"), "\n")
	if len(lines) != 1 {
		return 0, 0, fmt.Errorf("error parsing line %q: it must contain only one line", out)
	}
	parts := strings.Fields(lines[0])
	if len(parts) != 4 {
		return 0, 0, fmt.Errorf("invalid line %q", out)
	}
	f, err := strconv.ParseUint(parts[2], 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("error parsing line %q: %w", out, err)
	}
	l, err := strconv.ParseUint(parts[3], 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("error parsing line %q: %w", out, err)
	}
	return uint32(f), uint32(l), nil
}

// HandlerSupports tells whether the runtime handler ("" the default)
// supports user namespaces, as the kubelet reads it: a runtime that lists
// no handlers does not; a handler it does not list is an error.
func HandlerSupports(handlers []*runtimeapi.RuntimeHandler, handler string) (bool, error) {
	if len(handlers) == 0 {
		return false, nil
	}
	for _, h := range handlers {
		if h.GetName() == handler {
			return h.GetFeatures().GetUserNamespaces(), nil
		}
	}
	return false, fmt.Errorf("the handler %q is not known", handler)
}

// GetOrCreate is the pod's user namespace for CRI: nil for a pod in the
// host's (hostUsers unset or true), else its range, allocated and written
// to its directory the first time. A handler without user namespaces is
// refused with the kubelet's message.
func (m *Manager) GetOrCreate(pod *v1.Pod, handler string) (*runtimeapi.UserNamespace, error) {
	if pod.Spec.HostUsers == nil || *pod.Spec.HostUsers {
		return nil, nil
	}
	var handlers []*runtimeapi.RuntimeHandler
	if m.handlers != nil {
		handlers = m.handlers()
	}
	if ok, err := HandlerSupports(handlers, handler); err != nil || !ok {
		msg := "can't set `spec.hostUsers: false`, runtime does not support user namespaces"
		if handler != "" {
			msg = fmt.Sprintf("can't set `spec.hostUsers: false`, RuntimeClass handler %q does not support user namespaces", handler)
		}
		if err != nil {
			return nil, fmt.Errorf("%v: %w", msg, err)
		}
		return nil, errors.New(msg)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.fromDisk, pod.UID) // the pod is back: its worker releases it
	if from, ok := m.usedBy[pod.UID]; ok {
		return m.cri(from), nil
	}
	mapping, err := m.read(pod.UID)
	if err != nil {
		return nil, fmt.Errorf("user namespace: %w", err)
	}
	if mapping != nil {
		if err := m.record(pod.UID, mapping); err != nil {
			return nil, fmt.Errorf("user namespace: %w", err)
		}
		return m.cri(m.usedBy[pod.UID]), nil
	}
	from, err := m.allocate(pod.UID)
	if err != nil {
		return nil, fmt.Errorf("create user namespace: %w", err)
	}
	if err := m.write(pod.UID, from); err != nil {
		m.free(pod.UID)
		return nil, fmt.Errorf("create user namespace: %w", err)
	}
	return m.cri(from), nil
}

// Release frees the pod's range and removes its file, once nothing of
// the pod runs any more.
func (m *Manager) Release(uid types.UID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.releaseLocked(uid)
}

func (m *Manager) releaseLocked(uid types.UID) error {
	if _, ok := m.usedBy[uid]; !ok {
		return nil
	}
	d, err := m.podDir(uid)
	if err == nil {
		err = d.Remove(MappingsFile)
		d.Close()
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		// Kept: a range whose file stays would come back at the next start.
		return fmt.Errorf("release the user namespace of pod %q: %w", uid, err)
	}
	m.free(uid)
	return nil
}

// Retain releases the ranges of pods not in keep: pods that went while
// knode was down, whose directories and files stayed (the kubelet's
// CleanupOrphanedPodUsernsAllocations). Only ranges read from disk at
// start and not asked for since are candidates, decided and freed under
// the lock: keep is computed before Retain runs, and a pod declared in
// between has a range a running sandbox uses, which another pod must not
// get. Errors are returned together; the ranges that could not be
// released stay taken.
func (m *Manager) Retain(keep map[types.UID]bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for uid := range m.fromDisk {
		if !keep[uid] {
			errs = append(errs, m.releaseLocked(uid))
		}
	}
	return errors.Join(errs...)
}

// Allocated is the first host ID of the pod's range, if it has one.
func (m *Manager) Allocated(uid types.UID) (uint32, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	from, ok := m.usedBy[uid]
	return from, ok
}

func (m *Manager) cri(from uint32) *runtimeapi.UserNamespace {
	ids := func() []*runtimeapi.IDMapping {
		return []*runtimeapi.IDMapping{{HostId: from, ContainerId: 0, Length: m.length}}
	}
	return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: ids(), Gids: ids()}
}

// allocate takes a free range for uid, starting the search at a random
// range as the kubelet's allocator does.
func (m *Manager) allocate(uid types.UID) (uint32, error) {
	i, ok := m.used.takeFrom(rand.IntN(m.used.n))
	if !ok {
		return 0, errors.New("could not find an empty slot to allocate a user namespace")
	}
	from := uint32(i+m.off) * m.length
	m.usedBy[uid] = from
	return from, nil
}

func (m *Manager) free(uid types.UID) {
	from, ok := m.usedBy[uid]
	if !ok {
		return
	}
	delete(m.usedBy, uid)
	delete(m.fromDisk, uid)
	m.used.clear(int(from/m.length) - m.off)
}

// record takes the range a pod's file holds, checking it is one this node
// could have given and no other pod has.
func (m *Manager) record(uid types.UID, mp *mapping) error {
	from, length := mp.HostID, mp.Length
	if length != m.length {
		return fmt.Errorf("wrong user namespace length %v", length)
	}
	if from%m.length != 0 {
		return fmt.Errorf("wrong user namespace offset specified %v", from)
	}
	if prev, ok := m.usedBy[uid]; ok {
		if prev != from {
			return fmt.Errorf("different user namespace range already used by pod %q", uid)
		}
		return nil
	}
	i := int(from/m.length) - m.off
	if i < 0 || i >= m.used.n {
		return fmt.Errorf("id %v is out of range", from)
	}
	if m.used.has(i) {
		return fmt.Errorf("range picked for pod %q already taken", uid)
	}
	m.used.set(i)
	m.usedBy[uid] = from
	return nil
}

// fileFormat is the kubelet's userns file.
type fileFormat struct {
	UIDMappings []mapping `json:"uidMappings"`
	GIDMappings []mapping `json:"gidMappings"`
}

type mapping struct {
	HostID      uint32 `json:"hostId"`
	ContainerID uint32 `json:"containerId"`
	Length      uint32 `json:"length"`
}

// parseFile checks a userns file is one the kubelet (or knode) writes:
// one mapping, the same for users and groups, from ID 0.
func parseFile(content []byte) (*mapping, error) {
	var f fileFormat
	if err := json.Unmarshal(content, &f); err != nil {
		return nil, fmt.Errorf("invalid user namespace mappings file: %w", err)
	}
	if len(f.UIDMappings) != 1 {
		return nil, errors.New("invalid user namespace configuration: no more than one mapping allowed.")
	}
	if len(f.UIDMappings) != len(f.GIDMappings) {
		return nil, errors.New("invalid user namespace configuration: GID and UID mappings should be identical.")
	}
	if f.UIDMappings[0] != f.GIDMappings[0] {
		return nil, errors.New("invalid user namespace configuration: GID and UID mapping should be identical")
	}
	if f.UIDMappings[0].ContainerID != 0 {
		return nil, errors.New("invalid user namespace configuration: UID 0 must be mapped")
	}
	return &f.UIDMappings[0], nil
}

// podDir opens the pod's directory (its name is a checked UID).
func (m *Manager) podDir(uid types.UID) (*safefs.Dir, error) {
	if msgs := podpath.UID(string(uid)); len(msgs) > 0 {
		return nil, fmt.Errorf("pod UID %q: %s", uid, strings.Join(msgs, "; "))
	}
	return safefs.Open(filepath.Join(m.podsDir, string(uid)))
}

// read is the pod's recorded mapping, nil when it has none.
func (m *Manager) read(uid types.UID) (*mapping, error) {
	d, err := m.podDir(uid)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	content, _, err := d.ReadFile(MappingsFile, maxFileSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseFile(content)
}

// write records the pod's range in its directory, durably: the range must
// not be forgotten while the pod's processes hold it.
func (m *Manager) write(uid types.UID, from uint32) error {
	if msgs := podpath.UID(string(uid)); len(msgs) > 0 {
		return fmt.Errorf("pod UID %q: %s", uid, strings.Join(msgs, "; "))
	}
	pods, err := safefs.Open(m.podsDir)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(m.podsDir, 0o750); err == nil {
			pods, err = safefs.Open(m.podsDir)
		}
	}
	if err != nil {
		return err
	}
	defer pods.Close()
	d, err := pods.MkdirAll(string(uid), 0o750)
	if err != nil {
		return err
	}
	defer d.Close()
	mp := mapping{HostID: from, ContainerID: 0, Length: m.length}
	data, err := json.Marshal(fileFormat{UIDMappings: []mapping{mp}, GIDMappings: []mapping{mp}})
	if err != nil {
		return err
	}
	return d.WriteFileSync(MappingsFile, data, 0o644)
}

// bitmap marks the ranges in use; n ranges, at most 65535 (8 KiB).
type bitmap struct {
	n     int
	words []uint64
}

func newBitmap(n int) bitmap { return bitmap{n: n, words: make([]uint64, (n+63)/64)} }

func (b bitmap) has(i int) bool { return b.words[i/64]&(1<<(i%64)) != 0 }
func (b bitmap) set(i int)      { b.words[i/64] |= 1 << (i % 64) }
func (b bitmap) clear(i int)    { b.words[i/64] &^= 1 << (i % 64) }

// takeFrom sets and returns the first clear bit at or after start,
// wrapping around; false when all are set.
func (b bitmap) takeFrom(start int) (int, bool) {
	for k := 0; k <= len(b.words); k++ {
		w := (start/64 + k) % len(b.words)
		free := ^b.words[w]
		if k == 0 {
			free &= ^uint64(0) << (start % 64)
		}
		if k == len(b.words) {
			// Back at the first word: the bits before start.
			free = ^b.words[w] & (1<<(start%64) - 1)
		}
		for free != 0 {
			i := w*64 + bits.TrailingZeros64(free)
			if i >= b.n {
				break
			}
			b.set(i)
			return i, true
		}
	}
	return 0, false
}
