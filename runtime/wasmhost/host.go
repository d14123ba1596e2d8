package wasmhost

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/internal/sockjson"
	"github.com/wasmfleet/wasmfleet/runtime/wasm"
)

// ErrUnavailable is wrapped by errors of a Host that could not start or
// reach its host process: the runtime cannot run guests now (the pod's
// waiting reason is RuntimeClassUnsupported, not a module problem).
var ErrUnavailable = errors.New("wasm guest host unavailable")

// ChildEnv is set in the environment of the host processes Host starts. A
// process that has it starts no host of its own, so a binary that does not
// serve the guest-host command line (a test binary, say) cannot start
// itself over and over. It is outside the WASMFLEET_ prefix of settings
// (WASMFLEET_GUEST_HOST is the agent's guest-host setting).
const ChildEnv = "_WASMFLEET_GUEST_HOST_CHILD"

// Args is the command line that hands cfg to ParseArgs.
func (c Config) Args() []string {
	return []string{
		"--dir", c.Dir,
		"--cache-dir", c.Wasm.CacheDir,
		"--engine", c.Wasm.Engine,
		"--default-memory-limit", strconv.FormatInt(c.Wasm.DefaultMemoryLimit, 10),
		"--idle-exit", c.IdleExit.String(),
	}
}

// ParseArgs reads the command line Config.Args wrote.
func ParseArgs(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("guest-host", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Dir, "dir", "", "directory of the socket, lock, pid and log")
	fs.StringVar(&c.Wasm.CacheDir, "cache-dir", "", "wazero compilation cache")
	fs.StringVar(&c.Wasm.Engine, "engine", "", "compiler, interpreter or empty")
	fs.Int64Var(&c.Wasm.DefaultMemoryLimit, "default-memory-limit", 0, "bytes")
	fs.DurationVar(&c.IdleExit, "idle-exit", 0, "exit after this long without agent and guests")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.Dir == "" {
		return c, errors.New("guest-host: --dir is required")
	}
	return c, c.Wasm.Validate()
}

// HostConfig configures a Host.
type HostConfig struct {
	// Command is the executable and arguments that run Main (the agent's
	// own executable and its hidden guest-host subcommand); Host adds the
	// arguments of Config.Args.
	Command []string
	// Config is what the host is started with. Its Wasm also gives Info.
	Config Config
	// StartTimeout bounds a start of the host until it serves (0: 30s).
	StartTimeout time.Duration
	Log          *slog.Logger
}

// Host is a runtime.Detached whose guests run in a host process (Main). It
// connects to the host serving Config.Dir, starting one when a Prepare or
// Start needs it and there is none. Attach, IDs and Remove start none: no
// host means no containers. Its methods are safe for concurrent use.
type Host struct {
	cfg  HostConfig
	info runtime.Info
	log  *slog.Logger
	hc   *http.Client
	// connecting serializes connects and starts of the host; a 1-slot
	// semaphore so that a waiting caller can give up with its ctx.
	connecting chan struct{}

	mu       sync.Mutex
	link     *link // the connection to the host; nil when there is none
	handles  map[string]*container
	detached bool
	closed   bool
}

var _ runtime.Detached = (*Host)(nil)

// link is one connection to a host process: its /events stream.
type link struct {
	cancel context.CancelFunc
	ended  chan struct{} // closed when the stream ended
}

// NewHost returns a Host; it starts no process.
func NewHost(cfg HostConfig) *Host {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Host{cfg: cfg, info: wasm.Describe(cfg.Config.Wasm), log: log, hc: sockjson.NewClient(filepath.Join(cfg.Config.Dir, SocketFile)),
		connecting: make(chan struct{}, 1), handles: map[string]*container{}}
}

// Info implements runtime.Runtime; it starts no host.
func (h *Host) Info() runtime.Info { return h.info }

// errForeignHost is wrapped by the error of a host that does not speak
// this agent's protocol.
var errForeignHost = errors.New("foreign guest host")

// errDetached is returned by every call after Detach or Close.
var errDetached = errors.New("wasm guest host: detached")

// connect returns the link to the host, connecting (and with spawn,
// starting a host) if there is none. Without spawn and without a host it
// returns nil and no error.
func (h *Host) connect(ctx context.Context, spawn bool) (*link, error) {
	select {
	case h.connecting <- struct{}{}:
		defer func() { <-h.connecting }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	h.mu.Lock()
	l, gone := h.link, h.detached || h.closed
	h.mu.Unlock()
	if gone {
		return nil, errDetached
	}
	if l != nil {
		return l, nil
	}
	l, err := h.subscribe(ctx)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, errForeignHost):
		return nil, err
	case !spawn:
		return nil, nil // no host
	default:
		var proc *exec.Cmd
		if proc, err = h.spawn(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		exited := make(chan struct{})
		go func() {
			_ = proc.Wait() // reaps it, should it end while the agent runs
			close(exited)
		}()
		deadline := time.Now().Add(h.cfg.StartTimeout)
		for {
			if l, err = h.subscribe(ctx); err == nil {
				h.log.Info("wasm guest host started", "pid", proc.Process.Pid)
				break
			}
			select {
			case <-exited:
				return nil, fmt.Errorf("%w: it exited at start: %s", ErrUnavailable, h.logTail())
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%w: not serving after %s: %w", ErrUnavailable, h.cfg.StartTimeout, err)
			}
		}
	}
	h.mu.Lock()
	h.link = l
	h.mu.Unlock()
	return l, nil
}

// subscribe opens the host's /events stream; it fails when no host
// serves the socket.
func (h *Host) subscribe(ctx context.Context) (*link, error) {
	// The stream is the Host's, not the caller's: ctx bounds only the
	// connecting.
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, "http://helper/events", nil)
	resp, err := h.hc.Do(req)
	if !stop() { // ctx ended: cancel ends the stream, now or soon
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		return nil, ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if v := resp.Header.Get(protocolHeader); resp.StatusCode != http.StatusOK || v != protocolVersion {
		resp.Body.Close()
		cancel()
		// An agent cannot take over the guests of a host it does not
		// understand; stopping that host stops them.
		return nil, fmt.Errorf("%w: %w: the host serving %s answered %s with protocol %q, this agent speaks %q: stop it (its pid is in %s) to start a new one",
			ErrUnavailable, errForeignHost, filepath.Join(h.cfg.Config.Dir, SocketFile), resp.Status, v, protocolVersion, filepath.Join(h.cfg.Config.Dir, pidFile))
	}
	l := &link{cancel: cancel, ended: make(chan struct{})}
	go h.follow(l, resp.Body)
	return l, nil
}

// follow reads the exits of l's stream until it ends. When it ends the
// host is gone, and with it every guest still running: their handles end.
func (h *Host) follow(l *link, body io.ReadCloser) {
	defer close(l.ended)
	defer body.Close()
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		var ev exitEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Exit == nil {
			continue
		}
		h.mu.Lock()
		c := h.handles[ev.ID]
		h.mu.Unlock()
		if c != nil {
			c.finish(*ev.Exit)
		}
	}
	h.mu.Lock()
	if h.link == l {
		h.link = nil
	}
	lost := h.handles
	if h.detached {
		lost = nil
	} else {
		h.handles = map[string]*container{}
	}
	h.mu.Unlock()
	if len(lost) > 0 {
		h.log.Warn("wasm guest host gone with guests running", "running", len(lost))
	}
	now := time.Now()
	for _, c := range lost {
		c.finish(runtime.ExitStatus{ExitCode: runtime.ExitCodeKilled, Reason: runtime.ReasonError,
			Message: "the wasm guest host ended while the container ran", StartedAt: now, FinishedAt: now})
	}
}

// spawn starts a host process for the socket, in a session of its own,
// so that it outlives the agent.
func (h *Host) spawn() (*exec.Cmd, error) {
	if os.Getenv(ChildEnv) != "" {
		return nil, fmt.Errorf("%s is set: this process is a guest host, or a binary started as one that does not serve it", ChildEnv)
	}
	if len(h.cfg.Command) == 0 {
		return nil, errors.New("no command to start it")
	}
	dir := h.cfg.Config.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(filepath.Join(dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(h.cfg.Command[0], append(h.cfg.Command[1:], h.cfg.Config.Args()...)...)
	cmd.Env = append(os.Environ(), ChildEnv+"=1")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", h.cfg.Command[0], err)
	}
	return cmd, nil
}

// logTail is the end of the host's log, for errors.
func (h *Host) logTail() string {
	b, _ := os.ReadFile(filepath.Join(h.cfg.Config.Dir, logFile))
	b = bytes.TrimSpace(b)
	if len(b) > 1000 {
		b = b[len(b)-1000:]
	}
	return string(b)
}

// errorKinds are the sentinels the host's errors stand for.
var errorKinds = map[string]error{kindDigestMismatch: runtime.ErrDigestMismatch, kindClosing: errHostClosing}

// errHostClosing is wrapped by the error of a start the host refused as it
// exits.
var errHostClosing = errors.New("wasm guest host exiting")

// call posts in (nil: a GET) to path and decodes the answer into out (nil:
// none expected).
func (h *Host) call(ctx context.Context, path string, in, out any) error {
	return sockjson.Call(ctx, h.hc, path, in, out, errorKinds, ErrUnavailable)
}

// moduleError turns the host's word that m is invalid back into an
// *runtime.InvalidModuleError.
func moduleError(err error, m runtime.Module) error {
	var se *sockjson.Error
	if errors.As(err, &se) && se.Kind == kindInvalidModule {
		return &runtime.InvalidModuleError{Digest: m.Digest, Err: errors.New(se.Msg)}
	}
	return err
}

// withHost runs do against the host, starting one if there is none. When
// the host goes away under do (it was exiting, idle), do runs once more,
// against a new host.
func (h *Host) withHost(ctx context.Context, do func() error) error {
	for again := false; ; again = true {
		l, err := h.connect(ctx, true)
		if err != nil {
			return err
		}
		err = do()
		if err == nil || again || !(errors.Is(err, errHostClosing) || errors.Is(err, ErrUnavailable)) {
			return err
		}
		select {
		case <-l.ended:
		case <-time.After(time.Second): // the host is still there: the error is its
			return err
		case <-ctx.Done():
			return err
		}
	}
}

// Prepare implements runtime.Runtime, starting the host if needed.
func (h *Host) Prepare(ctx context.Context, m runtime.Module) error {
	return moduleError(h.withHost(ctx, func() error { return h.call(ctx, "/prepare", m, nil) }), m)
}

// Start implements runtime.Runtime, starting the host if needed. It writes
// the output to spec.Log; spec.Stdout and Stderr are not used.
func (h *Host) Start(ctx context.Context, spec runtime.ContainerSpec) (runtime.Container, error) {
	if spec.Log.Path == "" {
		return nil, fmt.Errorf("start %s: no log file", spec.ID)
	}
	var c *container
	err := h.withHost(ctx, func() error {
		var err error
		if c, err = h.register(spec.ID); err != nil {
			return err
		}
		err = h.call(ctx, "/start", startRequest{ID: spec.ID, Module: spec.Module, Args: spec.Args, Env: spec.Env,
			Mounts: spec.Mounts, MemoryLimit: spec.MemoryLimit, Log: spec.Log}, nil)
		if err != nil {
			h.unregister(c)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.ID, moduleError(err, spec.Module))
	}
	return c, nil
}

// register makes the handle of id before the host knows it, so that no
// exit of it is missed.
func (h *Host) register(id string) (*container, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.detached || h.closed {
		return nil, errDetached
	}
	if _, ok := h.handles[id]; ok {
		return nil, fmt.Errorf("container %s: already has a handle", id)
	}
	c := &container{h: h, id: id, Exited: runtime.MakeExited()}
	h.handles[id] = c
	return c, nil
}

func (h *Host) unregister(c *container) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.handles[c.id] == c {
		delete(h.handles, c.id)
	}
}

// Attach implements runtime.Detached. It starts no host.
func (h *Host) Attach(ctx context.Context, id string) (runtime.Container, bool, error) {
	l, err := h.connect(ctx, false)
	if l == nil || err != nil {
		return nil, false, err
	}
	c, err := h.register(id)
	if err != nil {
		return nil, false, err
	}
	var held []exitEvent
	if err := h.call(ctx, "/containers?id="+url.QueryEscape(id), nil, &held); err != nil {
		h.unregister(c)
		return nil, false, err
	}
	if len(held) == 0 {
		h.unregister(c)
		return nil, false, nil
	}
	if held[0].Exit != nil {
		c.finish(*held[0].Exit)
	}
	return c, true, nil
}

// IDs implements runtime.Detached. It starts no host.
func (h *Host) IDs(ctx context.Context) ([]string, error) {
	l, err := h.connect(ctx, false)
	if l == nil || err != nil {
		return nil, err
	}
	var held []exitEvent
	if err := h.call(ctx, "/containers", nil, &held); err != nil {
		return nil, err
	}
	ids := make([]string, len(held))
	for i, ev := range held {
		ids[i] = ev.ID
	}
	return ids, nil
}

// Remove implements runtime.Detached. It starts no host.
func (h *Host) Remove(ctx context.Context, id string) error {
	l, err := h.connect(ctx, false)
	if l == nil || err != nil {
		return err
	}
	h.mu.Lock()
	c := h.handles[id]
	delete(h.handles, id)
	h.mu.Unlock()
	if err := h.call(ctx, "/remove", idRequest{ID: id}, nil); err != nil {
		return err
	}
	if c != nil {
		// Removed before its exit arrived: the host stopped it.
		now := time.Now()
		c.finish(runtime.ExitStatus{ExitCode: runtime.ExitCodeKilled, Reason: runtime.ReasonError, Message: "removed", StartedAt: now, FinishedAt: now})
	}
	return nil
}

// Detach implements runtime.Detached: the host and its guests go on.
func (h *Host) Detach() error {
	h.mu.Lock()
	h.detached = true
	l := h.link
	h.mu.Unlock()
	if l != nil {
		l.cancel()
		<-l.ended
	}
	h.hc.CloseIdleConnections()
	return nil
}

// Close implements runtime.Runtime: the host stops every guest and exits.
// Their exits still reach their handles.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed || h.detached {
		h.closed = true
		h.mu.Unlock()
		return nil
	}
	l := h.link
	h.mu.Unlock()
	if l == nil { // not connected: is a host running?
		var err error
		if l, err = h.connect(ctx, false); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	if l == nil {
		return nil
	}
	if err := h.call(ctx, "/shutdown", struct{}{}, nil); err != nil {
		return err
	}
	select {
	case <-l.ended:
	case <-ctx.Done():
		l.cancel()
		<-l.ended
		return fmt.Errorf("close wasm guest host: %w", ctx.Err())
	}
	h.hc.CloseIdleConnections()
	return nil
}

// container is the handle of a guest in the host.
type container struct {
	h    *Host
	id   string
	once sync.Once
	runtime.Exited
}

func (c *container) finish(es runtime.ExitStatus) {
	c.once.Do(func() {
		c.Finish(es)
		c.h.unregister(c)
	})
}

func (c *container) ID() string { return c.id }

// Stop implements runtime.Container.
func (c *container) Stop(gracePeriod time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), max(gracePeriod, 0)+30*time.Second)
	defer cancel()
	err := c.h.call(ctx, "/stop", idRequest{ID: c.id, Grace: gracePeriod}, nil)
	if err == nil || gracePeriod <= 0 {
		return err
	}
	select { // the host went away: so did the guest
	case <-c.Done():
		return nil
	case <-time.After(time.Second):
		return err
	}
}
