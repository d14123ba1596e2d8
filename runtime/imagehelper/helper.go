package imagehelper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// Config configures a Helper.
type Config struct {
	// Path is the helper executable (cmd/wasmfleet-containerd).
	Path string
	// Args are its arguments (the containerd settings).
	Args []string
	// Socket is the unix socket's path: the Helper creates it (mode 0600,
	// replacing a stale one) each time it starts the process.
	Socket string
	// Info is what Info returns: it must be known without starting the
	// process.
	Info runtime.Info
	// StartTimeout bounds a start of the process until it serves (default
	// one minute: the helper connects to containerd and removes the
	// containers a previous helper left).
	StartTimeout time.Duration
	// Log receives the process's starts and ends, and its stderr lines.
	Log *slog.Logger
}

// Helper is an image runtime whose work is done by a helper process
// (ServeHelper). It starts the process on the first Pull or Start, not
// before, and again on the next one after the process died. Containers
// running when the process dies end with ReasonError and a message saying
// so; it is then started again at once, so that the containers it left in
// containerd are removed.
//
// The process ends when the Helper is closed, and on its own when the
// agent's process is gone (its stdin closes; on Linux it also gets SIGTERM
// when its parent dies). Helper's methods are safe for concurrent use.
type Helper struct {
	cfg Config
	log *slog.Logger
	// starting serializes starts of the process; a 1-slot semaphore so
	// that a waiting caller can give up with its ctx.
	starting chan struct{}

	mu     sync.Mutex
	proc   *process // the latest process; nil before the first start
	closed bool
}

var _ ImageRuntime = (*Helper)(nil)

// NewHelper returns a Helper; it starts no process.
func NewHelper(cfg Config) *Helper {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = time.Minute
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Helper{cfg: cfg, log: log, starting: make(chan struct{}, 1)}
}

// process is one run of the helper executable.
type process struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	client *client
	stderr *tailWriter
	exited chan struct{} // closed once cmd.Wait returned
	err    error         // cmd.Wait's error, set before exited is closed
}

func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// describeExit says how the process ended, with the last lines it wrote
// to stderr.
func (p *process) describeExit() string {
	s := fmt.Sprintf("containerd helper (pid %d) exited", p.cmd.Process.Pid)
	if p.err != nil {
		s += ": " + p.err.Error()
	}
	if t := p.stderr.tail(); t != "" {
		s += "; it wrote: " + t
	}
	return s
}

// Info returns Config.Info.
func (h *Helper) Info() runtime.Info { return h.cfg.Info }

// Prepare does nothing: an image runtime has no module to check.
func (h *Helper) Prepare(context.Context, runtime.Module) error { return nil }

// Pull pulls ref through the helper, starting it if needed.
func (h *Helper) Pull(ctx context.Context, ref string) error {
	p, err := h.process(ctx)
	if err != nil {
		return err
	}
	return p.client.pull(ctx, ref)
}

// Start starts spec through the helper, starting it if needed.
func (h *Helper) Start(ctx context.Context, spec runtime.ContainerSpec) (runtime.Container, error) {
	p, err := h.process(ctx)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	return p.client.start(ctx, spec)
}

// Close ends the helper process: its runtime kills the running containers,
// whose exits still reach their handles, and the process exits. If ctx ends
// first, the process is killed. Start and Pull fail after Close.
func (h *Helper) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	select { // wait for a start under way
	case h.starting <- struct{}{}:
		defer func() { <-h.starting }()
	case <-ctx.Done():
		return fmt.Errorf("close containerd helper: %w", ctx.Err())
	}
	h.mu.Lock()
	p := h.proc
	h.mu.Unlock()
	defer os.Remove(h.cfg.Socket)
	if p == nil || !p.alive() {
		return nil
	}
	p.stdin.Close() // the helper's signal to finish
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("close containerd helper: killed after %w", ctx.Err())
	}
}

// process returns the running process, starting one if there is none.
func (h *Helper) process(ctx context.Context) (*process, error) {
	select {
	case h.starting <- struct{}{}:
		defer func() { <-h.starting }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	h.mu.Lock()
	p, closed := h.proc, h.closed
	h.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%w: the runtime is closed", ErrUnavailable)
	}
	if p != nil && p.alive() {
		return p, nil
	}
	p, err := h.spawn(ctx)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.proc = p
	h.mu.Unlock()
	return p, nil
}

// spawn starts the process on a new socket and waits until it serves.
func (h *Helper) spawn(ctx context.Context) (*process, error) {
	fail := func(err error) (*process, error) {
		return nil, fmt.Errorf("%w: start %s: %w", ErrUnavailable, h.cfg.Path, err)
	}
	if err := os.Remove(h.cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(err)
	}
	if err := os.MkdirAll(filepath.Dir(h.cfg.Socket), 0o700); err != nil {
		return fail(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: h.cfg.Socket, Net: "unix"})
	if err != nil {
		return fail(err)
	}
	// The helper serves on the socket's file descriptor; the path stays
	// for this side to connect to. This side's copies are closed once the
	// helper has its own: a helper that exits then closes the socket, which
	// fails the requests waiting for it.
	ln.SetUnlinkOnClose(false)
	lnFile, err := ln.File()
	ln.Close()
	if err != nil {
		return fail(err)
	}
	if err := os.Chmod(h.cfg.Socket, 0o600); err != nil {
		lnFile.Close()
		return fail(err)
	}

	p := &process{exited: make(chan struct{}), stderr: &tailWriter{log: h.log}}
	p.cmd = exec.Command(h.cfg.Path, h.cfg.Args...)
	p.cmd.ExtraFiles = []*os.File{lnFile} // fd 3
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	p.cmd.SysProcAttr = sysProcAttr()
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		lnFile.Close()
		return fail(err)
	}
	p.stdin = stdin
	err = p.cmd.Start()
	lnFile.Close()
	if err != nil {
		return fail(err)
	}
	pid := p.cmd.Process.Pid
	p.client = newClient(h.cfg.Socket, func(err error) string { return h.lost(p, err) })
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
		p.client.closeIdle()
		h.log.Info("containerd helper exited", "pid", pid, "err", p.err)
	}()

	// The first request waits in the socket's backlog until the helper
	// serves, or fails when it exits.
	sctx, cancel := context.WithTimeout(ctx, h.cfg.StartTimeout)
	defer cancel()
	info, err := p.client.info(sctx)
	if err != nil {
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fail(errors.New(p.describeExit()))
	}
	h.log.Info("containerd helper started", "pid", pid, "path", h.cfg.Path, "runtime", info.Version)
	return p, nil
}

// lostWait is how long a container whose stream broke waits to learn
// whether the helper process died.
const lostWait = 5 * time.Second

// lost is the message of a container of p whose stream broke with err; it
// also starts a new process, whose runtime removes the containers the dead
// one left running in containerd.
func (h *Helper) lost(p *process, err error) string {
	select {
	case <-p.exited:
	case <-time.After(lostWait):
		return fmt.Sprintf("lost the container's output stream from the containerd helper (pid %d): %v", p.cmd.Process.Pid, err)
	}
	h.mu.Lock()
	restart := !h.closed && h.proc == p
	h.mu.Unlock()
	if restart {
		go func() {
			h.log.Warn("containerd helper died with running containers; starting it again to remove them from containerd", "pid", p.cmd.Process.Pid)
			ctx, cancel := context.WithTimeout(context.Background(), h.cfg.StartTimeout)
			defer cancel()
			if _, err := h.process(ctx); err != nil && !h.isClosed() {
				h.log.Warn("containerd helper not started again", "err", err)
			}
		}()
	}
	return p.describeExit() + " while the container ran"
}

func (h *Helper) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// tailWriter logs the helper's output line by line and keeps its last
// lines for error messages.
type tailWriter struct {
	log *slog.Logger

	mu      sync.Mutex
	partial []byte
	last    []string
}

const tailLines = 5

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		w.log.Info("containerd helper: " + line)
		w.last = append(w.last, line)
		if len(w.last) > tailLines {
			w.last = w.last[1:]
		}
	}
	return len(p), nil
}

func (w *tailWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := slices.Clone(w.last)
	if len(w.partial) > 0 {
		lines = append(lines, string(w.partial))
	}
	return strings.Join(lines, " | ")
}
