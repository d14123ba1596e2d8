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
	// Marker is a file the Helper creates before its first container
	// starts. While it does not exist, Attach, IDs and Remove know there
	// is no container without starting the process: a node that never ran
	// one never starts it.
	Marker string
	// Info is what Info returns: it must be known without starting the
	// process.
	Info runtime.Info
	// StartTimeout bounds a start of the process until it serves (default
	// one minute: the helper connects to containerd and removes the
	// containers with writers a previous helper left).
	StartTimeout time.Duration
	// Log receives the process's starts and ends, and its stderr lines.
	Log *slog.Logger
}

// Helper is a runtime.Detached image runtime whose work is done by a helper
// process (ServeHelper). It starts the process when it needs it, not
// before, and again after it died: the containers run on in containerd
// meanwhile, and their handles find them again through the new process.
//
// The process ends when the Helper is detached or closed, and on its own
// when the agent's process is gone (its stdin closes; on Linux it also
// gets SIGTERM when its parent dies), leaving the containers running.
// Helper's methods are safe for concurrent use.
type Helper struct {
	cfg Config
	log *slog.Logger
	// starting serializes starts of the process; a 1-slot semaphore so
	// that a waiting caller can give up with its ctx.
	starting chan struct{}
	// ctx ends with Detach and Close: the handles stop following their
	// containers.
	ctx    context.Context
	cancel context.CancelFunc

	following sync.WaitGroup // one per handle's follower

	mu      sync.Mutex
	proc    *process // the latest process; nil before the first start
	closing bool     // Detach or Close began: no new handles
	closed  bool     // detached or closed: no process to use
	handles map[string]*container
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
	ctx, cancel := context.WithCancel(context.Background())
	return &Helper{cfg: cfg, log: log, starting: make(chan struct{}, 1), ctx: ctx, cancel: cancel, handles: map[string]*container{}}
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

// Start starts spec, which must name its Log, through the helper, starting
// it if needed.
func (h *Helper) Start(ctx context.Context, spec runtime.ContainerSpec) (runtime.Container, error) {
	if spec.Log.Path == "" {
		return nil, fmt.Errorf("start %s: no log file: the helper's containers write their own", spec.ID)
	}
	p, err := h.process(ctx)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	if err := h.mark(); err != nil {
		return nil, fmt.Errorf("start %s: %w: %w", spec.ID, ErrUnavailable, err)
	}
	if err := p.client.start(ctx, spec); err != nil {
		return nil, err
	}
	return h.handle(spec.ID)
}

// mark creates Config.Marker.
func (h *Helper) mark() error {
	if h.cfg.Marker == "" {
		return nil
	}
	f, err := os.OpenFile(h.cfg.Marker, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// unused reports that no container was ever started: Config.Marker is set
// and does not exist.
func (h *Helper) unused() bool {
	if h.cfg.Marker == "" {
		return false
	}
	_, err := os.Stat(h.cfg.Marker)
	return errors.Is(err, os.ErrNotExist)
}

// Attach implements runtime.Detached, starting the helper if a container
// may exist.
func (h *Helper) Attach(ctx context.Context, id string) (runtime.Container, bool, error) {
	if h.unused() {
		return nil, false, nil
	}
	p, err := h.process(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("attach %s: %w", id, err)
	}
	found, err := p.client.attach(ctx, id)
	if err != nil || !found {
		return nil, false, err
	}
	c, err := h.handle(id)
	return c, err == nil, err
}

// IDs implements runtime.Detached, starting the helper if a container may
// exist.
func (h *Helper) IDs(ctx context.Context) ([]string, error) {
	if h.unused() {
		return nil, nil
	}
	p, err := h.process(ctx)
	if err != nil {
		return nil, err
	}
	return p.client.ids(ctx)
}

// Remove implements runtime.Detached, starting the helper if a container
// may exist.
func (h *Helper) Remove(ctx context.Context, id string) error {
	if h.unused() {
		return nil
	}
	p, err := h.process(ctx)
	if err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	return p.client.remove(ctx, id)
}

// detachWait bounds how long Detach waits for the process to exit.
const detachWait = 10 * time.Second

// Detach implements runtime.Detached: the process exits, its containers
// run on. Every method fails afterwards.
func (h *Helper) Detach() error {
	return h.end(context.Background(), false)
}

// Close ends the helper process: its runtime kills and removes the
// containers, whose exits still reach their handles, and the process
// exits. If ctx ends first, the process is killed. Every method fails
// afterwards.
func (h *Helper) Close(ctx context.Context) error {
	return h.end(ctx, true)
}

// end detaches the Helper, or closes it (kill).
func (h *Helper) end(ctx context.Context, kill bool) error {
	h.mu.Lock()
	h.closing = true // no new handles from here
	hs := make([]*container, 0, len(h.handles))
	for _, c := range h.handles {
		hs = append(hs, c)
	}
	h.mu.Unlock()
	if kill {
		// A helper must run to remove the containers, if any may exist.
		if !h.unused() {
			_, _ = h.process(ctx)
		}
		// Kill what the handles follow, and let them learn how it ended.
		for _, c := range hs {
			go c.Stop(0)
		}
		followed := make(chan struct{})
		go func() {
			h.following.Wait()
			close(followed)
		}()
		select {
		case <-followed:
		case <-ctx.Done():
		case <-time.After(detachWait):
		}
	}
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	defer h.cancel()
	// Wait for a start under way, unless ctx has ended.
	select {
	case h.starting <- struct{}{}:
	default:
		select {
		case h.starting <- struct{}{}:
		case <-ctx.Done():
			// The process being started is killed as it starts (see
			// process); the one before, if it lives, now.
			if p := h.current(); p != nil && p.alive() {
				_ = p.cmd.Process.Kill()
			}
			return fmt.Errorf("close containerd helper: %w", ctx.Err())
		}
	}
	defer func() { <-h.starting }()
	p := h.current()
	if p == nil || !p.alive() {
		return nil
	}
	defer os.Remove(h.cfg.Socket)
	var err error
	if kill {
		// The helper's runtime kills and removes every container of the
		// node, followed or not.
		if err = p.client.close(ctx); err != nil {
			err = fmt.Errorf("close containerd helper: %w", err)
		}
	}
	p.stdin.Close() // the helper's signal to finish
	wait := time.NewTimer(detachWait)
	defer wait.Stop()
	select {
	case <-p.exited:
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.exited
		err = errors.Join(err, fmt.Errorf("close containerd helper: killed after %w", ctx.Err()))
	case <-wait.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		err = errors.Join(err, fmt.Errorf("containerd helper (pid %d) did not exit within %s: killed", p.cmd.Process.Pid, detachWait))
	}
	return err
}

// current returns the latest process (nil before the first start).
func (h *Helper) current() *process {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.proc
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
	closed = h.closed
	h.mu.Unlock()
	if closed { // a Close that could not wait for this start
		_ = p.cmd.Process.Kill()
		return nil, fmt.Errorf("%w: the runtime is closed", ErrUnavailable)
	}
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
	p.client = newClient(h.cfg.Socket)
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
