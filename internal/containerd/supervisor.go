package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled explains how to get a runtime when none is found.
var ErrNotInstalled = errors.New("no containerd binary found on PATH: install containerd 2.x " +
	"(e.g. `go install github.com/containerd/containerd/v2/cmd/containerd@v2.4.2` and containerd-shim-runc-v2, plus runc), " +
	"or point knode at a running runtime with --container-runtime-endpoint=unix:///run/containerd/containerd.sock")

// Options configure one supervised instance.
type Options struct {
	Layout   Layout
	Settings Settings
	// Binary is the containerd executable; empty looks it up on PATH.
	Binary string
	// ExtraPath is put first on containerd's PATH (the shim and runc inherit
	// it), e.g. the directory of a newer criu.
	ExtraPath []string
	Log       *slog.Logger
}

// Supervisor keeps one containerd process running until Stop.
type Supervisor struct {
	opts   Options
	binary string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
	done    chan struct{}
}

// Start writes the configuration, starts containerd, waits until its socket
// answers, and keeps restarting it with back-off if it dies.
func Start(ctx context.Context, opts Options) (*Supervisor, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	binary := opts.Binary
	if binary == "" {
		p, err := exec.LookPath("containerd")
		if err != nil {
			return nil, ErrNotInstalled
		}
		binary = p
	}
	if opts.Settings.RuncBinary == "" {
		p, err := exec.LookPath("runc")
		if err != nil {
			return nil, errors.New("no runc binary found on PATH: install it (Debian: apt-get install runc)")
		}
		opts.Settings.RuncBinary = p
	}
	if err := writeFiles(opts.Layout, opts.Settings); err != nil {
		return nil, err
	}
	if err := ensureBridge(opts.Layout, opts.Settings.PodCIDR); err != nil {
		// Pods still run; only the host cannot reach them (HTTP and TCP probes fail).
		opts.Log.Warn("the host will not reach pod IPs: cannot set up the pod network's bridge", "err", err)
	}
	s := &Supervisor{opts: opts, binary: binary, done: make(chan struct{})}
	s.killLeftover()
	if err := s.startProcess(); err != nil {
		return nil, err
	}
	if err := WaitForSocket(ctx, opts.Layout.Socket(), 30*time.Second); err != nil {
		s.Stop(5 * time.Second)
		return nil, fmt.Errorf("containerd did not come up (see %s): %w", opts.Layout.LogFile(), err)
	}
	go s.supervise()
	return s, nil
}

// Endpoint is the CRI endpoint of the supervised instance.
func (s *Supervisor) Endpoint() string { return s.opts.Layout.Endpoint() }

// Binary is the containerd executable in use.
func (s *Supervisor) Binary() string { return s.binary }

func (s *Supervisor) startProcess() error {
	logFile, err := os.OpenFile(s.opts.Layout.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open containerd log: %w", err)
	}
	cmd := exec.Command(s.binary, "--config", s.opts.Layout.Config())
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = s.environ()
	// Its own process group, so a terminal's Ctrl-C reaches knode only and
	// knode stops containerd in order; Pdeathsig ends it if knode is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start containerd: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	if err := os.WriteFile(s.opts.Layout.PIDFile(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		s.opts.Log.Warn("cannot write containerd pid file", "err", err)
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	s.opts.Log.Info("started embedded containerd", "pid", cmd.Process.Pid, "binary", s.binary, "config", s.opts.Layout.Config())
	return nil
}

func (s *Supervisor) environ() []string {
	env := os.Environ()
	if len(s.opts.ExtraPath) == 0 {
		return env
	}
	path := strings.Join(s.opts.ExtraPath, string(os.PathListSeparator))
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = "PATH=" + path + string(os.PathListSeparator) + strings.TrimPrefix(kv, "PATH=")
			return env
		}
	}
	return append(env, "PATH="+path)
}

// supervise restarts containerd whenever it exits, backing off from 1 s to 30 s.
func (s *Supervisor) supervise() {
	defer close(s.done)
	delay := time.Second
	for {
		s.mu.Lock()
		exited := s.exited
		s.mu.Unlock()
		started := time.Now()
		<-exited
		s.mu.Lock()
		stopped := s.stopped
		s.mu.Unlock()
		if stopped {
			return
		}
		if time.Since(started) > time.Minute {
			delay = time.Second
		}
		s.opts.Log.Error("embedded containerd exited, restarting", "retryIn", delay, "log", s.opts.Layout.LogFile())
		time.Sleep(delay)
		delay = min(delay*2, 30*time.Second)
		s.mu.Lock()
		stopped = s.stopped
		s.mu.Unlock()
		if stopped {
			return
		}
		if err := s.startProcess(); err != nil {
			s.opts.Log.Error("restart of embedded containerd failed", "err", err)
			// Retry through the same loop: make a closed channel stand for the failed start.
			ch := make(chan struct{})
			close(ch)
			s.mu.Lock()
			s.exited = ch
			s.mu.Unlock()
		}
	}
}

// Stop ends containerd (SIGTERM, then SIGKILL after timeout) and its
// supervision. Containers keep running in their shims, as with any containerd.
func (s *Supervisor) Stop(timeout time.Duration) {
	s.mu.Lock()
	s.stopped = true
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
	}
	_ = os.Remove(s.opts.Layout.PIDFile())
}

// killLeftover ends a containerd left by an earlier knode of the same root
// dir (one that was killed before it could stop it), so two never share a
// root.
func (s *Supervisor) killLeftover() {
	data, err := os.ReadFile(s.opts.Layout.PIDFile())
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return
	}
	exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
	if err != nil || filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != filepath.Base(s.binary) {
		return
	}
	s.opts.Log.Warn("stopping containerd left by an earlier knode", "pid", pid)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// WaitForSocket waits until a unix socket accepts connections.
func WaitForSocket(ctx context.Context, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("socket %s: %w", path, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
