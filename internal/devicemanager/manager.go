// Package devicemanager hosts device plugins (API v1beta1) as the kubelet
// does: plugins register on <root-dir>/device-plugins/kubelet.sock, report
// devices and health over ListAndWatch, and get devices allocated into the
// containers that request them. Allocations survive restarts of knode and of
// plugins through the kubelet's own checkpoint file. Unlike the kubelet, a
// stuck plugin only delays pods that use it, a broken ListAndWatch stream is
// retried, and very large device lists work.
package devicemanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"knode.io/knode/internal/devicemanager/checkpoint"
)

// Options configure a Manager.
type Options struct {
	// Dir is the device plugins directory (<root-dir>/device-plugins).
	Dir string
	// GracePeriod is how long a disconnected plugin's devices keep their
	// capacity (the kubelet's 5 minutes).
	GracePeriod time.Duration
	// CallTimeout bounds Allocate and GetPreferredAllocation (default 30 s).
	CallTimeout time.Duration
	// Observer receives registration and allocation events for metrics; may be nil.
	Observer Observer
	Log      *slog.Logger
}

// Observer is told about registrations and allocation times.
type Observer interface {
	PluginRegistered(resource string)
	AllocationDone(resource string, d time.Duration)
}

// Manager tracks plugins, devices and allocations.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	resources map[string]*resource
	allocs    allocations
	// used[resource][device] is kept with allocs, so allocation never rescans every pod.
	used map[string]map[string]bool
	// restored are the pods whose devices came from the checkpoint and
	// that have not asked for them since: the only ones Retain may free
	// (its keep set is computed before it runs; a pod allocated since is
	// freed by Release when it goes).
	restored map[string]bool
	// changed is closed and replaced whenever capacity or health changes.
	changed chan struct{}
	// failed keeps registrations that never succeeded, for diagnosis.
	failed map[string]*resource
	// seq counts changes to what the checkpoint holds; written is the last
	// seq on disk. The writer goroutine coalesces changes into one write;
	// flushed is closed and replaced after each write.
	seq       uint64
	written   uint64
	writeKick chan struct{}
	flushed   chan struct{}

	grpc *grpc.Server
	ln   net.Listener
}

// resource is one extended resource and what its plugin reports.
// devEntry is a device as allocation sees it.
type devEntry struct {
	id      string
	numa    int64
	healthy bool
}

type resource struct {
	name     string
	endpoint *endpoint
	devices  map[string]*pluginapi.Device
	// ids are the devices' IDs and order the same devices with what
	// allocation needs, both sorted once per update: allocation and the
	// checkpoint read them on every call.
	ids   []string
	order []devEntry
	// disconnectedAt is set while no plugin serves the resource.
	disconnectedAt time.Time
	lastError      string
	lastErrorAt    time.Time
	// allocMu serializes allocations of this resource only.
	allocMu sync.Mutex
}

// New loads the checkpoint (a corrupt one is refused: knode starts with no
// allocations rather than wrong ones) and prepares the directory.
func New(opts Options) (*Manager, error) {
	if opts.GracePeriod == 0 {
		opts.GracePeriod = 5 * time.Minute
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create device plugins directory: %w", err)
	}
	m := &Manager{opts: opts, log: opts.Log, resources: map[string]*resource{}, allocs: allocations{}, changed: make(chan struct{}),
		failed: map[string]*resource{}, used: map[string]map[string]bool{}, restored: map[string]bool{}, writeKick: make(chan struct{}, 1), flushed: make(chan struct{})}
	entries, registered, err := checkpoint.Read(m.checkpointPath())
	switch {
	case err == nil:
		m.allocs.load(entries)
		for _, e := range entries {
			m.restored[e.PodUID] = true
			for _, ids := range e.DeviceIDs {
				m.markUsedLocked(e.ResourceName, ids, true)
			}
		}
		now := time.Now()
		for name := range registered {
			// Known from before, with no devices until its plugin registers again.
			m.resources[name] = &resource{name: name, devices: map[string]*pluginapi.Device{}, disconnectedAt: now}
		}
		m.log.Info("device allocations restored from the checkpoint", "entries", len(entries), "resources", len(registered))
	case errors.Is(err, os.ErrNotExist):
	default:
		m.log.Error("device manager checkpoint refused; starting with no allocations", "file", m.checkpointPath(), "err", err)
	}
	return m, nil
}

func (m *Manager) checkpointPath() string { return filepath.Join(m.opts.Dir, checkpoint.FileName) }

// SocketPath is the registration socket, kubelet.sock.
func (m *Manager) SocketPath() string { return filepath.Join(m.opts.Dir, "kubelet.sock") }

// Start removes stale sockets (keeping the checkpoint) and serves
// Registration. Plugins watching the directory see kubelet.sock recreated
// and register again.
func (m *Manager) Start(ctx context.Context) error {
	entries, err := os.ReadDir(m.opts.Dir)
	if err != nil {
		return fmt.Errorf("read device plugins directory: %w", err)
	}
	// As the kubelet: every socket goes (the checkpoint stays), so plugins
	// see kubelet.sock recreated and register again on fresh sockets.
	for _, e := range entries {
		if e.Type()&os.ModeSocket != 0 {
			_ = os.Remove(filepath.Join(m.opts.Dir, e.Name()))
		}
	}
	ln, err := net.Listen("unix", m.SocketPath())
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.SocketPath(), err)
	}
	m.ln = ln
	m.grpc = grpc.NewServer()
	pluginapi.RegisterRegistrationServer(m.grpc, &registration{m: m})
	go func() {
		if err := m.grpc.Serve(ln); err != nil {
			m.log.Error("device plugin registration server stopped", "err", err)
		}
	}()
	go m.expireLoop(ctx)
	go m.checkpointWriter(ctx)
	go func() {
		<-ctx.Done()
		m.stop()
	}()
	m.log.Info("device plugin registration serving", "socket", m.SocketPath())
	return nil
}

func (m *Manager) stop() {
	if m.grpc != nil {
		m.grpc.Stop()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.resources {
		if r.endpoint != nil {
			r.endpoint.close()
			r.endpoint = nil
		}
	}
}

// register makes a plugin the resource's endpoint, replacing an older one.
func (m *Manager) register(ep *endpoint) {
	m.mu.Lock()
	r := m.resources[ep.resource]
	if r == nil {
		r = &resource{name: ep.resource, devices: map[string]*pluginapi.Device{}}
		m.resources[ep.resource] = r
	}
	old := r.endpoint
	r.endpoint = ep
	r.disconnectedAt = time.Time{}
	r.lastError = ""
	delete(m.failed, ep.resource)
	// A new registration replaces the device list: it arrives with ListAndWatch.
	r.devices, r.ids, r.order = map[string]*pluginapi.Device{}, nil, nil
	m.notifyLocked()
	m.mu.Unlock()
	if old != nil {
		old.close()
	}
	if m.opts.Observer != nil {
		m.opts.Observer.PluginRegistered(ep.resource)
	}
	m.log.Info("device plugin registered", "resource", ep.resource, "endpoint", ep.socket,
		"preferredAllocation", ep.options.GetGetPreferredAllocationAvailable(), "preStart", ep.options.GetPreStartRequired())
	go m.watch(ep)
}

// registrationFailed records why a plugin could not register, for `knode devices`.
func (m *Manager) registrationFailed(name string, err error) {
	m.log.Warn("device plugin registration failed", "resource", name, "err", err)
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.resources[name]
	if r == nil {
		// The resource never appears, but its failure is kept for diagnosis.
		r = &resource{name: name, devices: map[string]*pluginapi.Device{}, disconnectedAt: time.Now()}
		r.lastError, r.lastErrorAt = err.Error(), time.Now()
		m.failed[name] = r
		return
	}
	r.lastError, r.lastErrorAt = err.Error(), time.Now()
}

// watch runs ListAndWatch for an endpoint; a broken stream is retried with
// back-off while the plugin's socket exists (the kubelet gives up at once).
func (m *Manager) watch(ep *endpoint) {
	delay := 100 * time.Millisecond
	for {
		err := m.listAndWatch(ep)
		if ep.ctx.Err() != nil {
			return // replaced or stopped
		}
		m.disconnected(ep, err)
		if _, statErr := os.Stat(ep.socket); statErr != nil {
			m.log.Warn("device plugin socket is gone; waiting for the plugin to register again", "resource", ep.resource, "socket", ep.socket)
			return
		}
		select {
		case <-ep.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

func (m *Manager) listAndWatch(ep *endpoint) error {
	stream, err := ep.client.ListAndWatch(ep.ctx, &pluginapi.Empty{})
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		m.updateDevices(ep, resp.Devices)
	}
}

// updateDevices replaces the resource's device set with the plugin's list.
func (m *Manager) updateDevices(ep *endpoint, devices []*pluginapi.Device) {
	m.mu.Lock()
	r := m.resources[ep.resource]
	if r == nil || r.endpoint != ep {
		m.mu.Unlock()
		return
	}
	next := make(map[string]*pluginapi.Device, len(devices))
	ids := make([]string, 0, len(devices))
	for _, d := range devices {
		if _, dup := next[d.ID]; !dup {
			ids = append(ids, d.ID)
		}
		next[d.ID] = d
	}
	sort.Strings(ids)
	order := make([]devEntry, len(ids))
	for i, id := range ids {
		order[i] = devEntry{id: id, numa: numaNode(next[id]), healthy: next[id].Health == pluginapi.Healthy}
	}
	r.devices, r.ids, r.order = next, ids, order
	r.disconnectedAt = time.Time{}
	m.notifyLocked()
	m.dirtyLocked()
	m.mu.Unlock()
}

// disconnected marks a resource's devices unhealthy; capacity stays until the grace period ends.
func (m *Manager) disconnected(ep *endpoint, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.resources[ep.resource]
	if r == nil || r.endpoint != ep || !r.disconnectedAt.IsZero() {
		return
	}
	r.disconnectedAt = time.Now()
	m.notifyLocked()
	m.log.Warn("device plugin disconnected; its devices are unhealthy", "resource", ep.resource, "err", err, "grace", m.opts.GracePeriod)
}

// expireLoop drops the capacity of resources disconnected longer than the grace period.
func (m *Manager) expireLoop(ctx context.Context) {
	t := time.NewTicker(min(m.opts.GracePeriod/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		for _, r := range m.resources {
			if !r.disconnectedAt.IsZero() && len(r.devices) > 0 && time.Since(r.disconnectedAt) > m.opts.GracePeriod {
				m.log.Warn("device plugin did not come back within the grace period; capacity is now 0", "resource", r.name)
				r.devices, r.ids, r.order = map[string]*pluginapi.Device{}, nil, nil
				m.notifyLocked()
			}
		}
		m.mu.Unlock()
	}
}

func (m *Manager) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Changed returns a channel closed at the next capacity or health change.
func (m *Manager) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *Manager) markUsedLocked(resource string, ids []string, used bool) {
	if m.used[resource] == nil {
		m.used[resource] = map[string]bool{}
	}
	for _, id := range ids {
		if used {
			m.used[resource][id] = true
		} else {
			delete(m.used[resource], id)
		}
	}
}

// dirtyLocked records a change the checkpoint must hold and wakes the writer.
func (m *Manager) dirtyLocked() uint64 {
	m.seq++
	select {
	case m.writeKick <- struct{}{}:
	default:
	}
	return m.seq
}

// checkpointWriter writes the checkpoint after changes, one write for any
// number of changes that arrived meanwhile, outside the lock: a large
// device list must not hold up allocations while it is encoded.
func (m *Manager) checkpointWriter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			// A last write on the way out, so a clean stop loses nothing.
			m.mu.Lock()
			pending := m.seq > m.written
			m.mu.Unlock()
			if !pending {
				return
			}
		case <-m.writeKick:
		}
		m.mu.Lock()
		seq := m.seq
		entries := m.allocs.entries()
		registered := map[string][]string{}
		for name, r := range m.resources {
			// r.ids is replaced, never changed in place: safe to share.
			registered[name] = r.ids
			if registered[name] == nil {
				registered[name] = []string{}
			}
		}
		m.mu.Unlock()
		sortEntries(entries)
		if err := checkpoint.Write(m.checkpointPath(), entries, registered); err != nil {
			m.log.Error("cannot write the device manager checkpoint", "err", err)
		}
		m.mu.Lock()
		m.written = seq
		close(m.flushed)
		m.flushed = make(chan struct{})
		m.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
	}
}

// flush waits until every change made so far is on disk.
func (m *Manager) flush(ctx context.Context) error {
	m.mu.Lock()
	target := m.seq
	for m.written < target {
		ch := m.flushed
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the device checkpoint to be written: %w", ctx.Err())
		case <-ch:
		}
		m.mu.Lock()
	}
	m.mu.Unlock()
	return nil
}
