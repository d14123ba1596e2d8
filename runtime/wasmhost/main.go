package wasmhost

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wasmfleet/wasmfleet/internal/dirlock"
	"github.com/wasmfleet/wasmfleet/runtime/wasm"
)

// Files in Config.Dir.
const (
	SocketFile = "wasm-host.sock"
	pidFile    = "wasm-host.pid"
	lockFile   = "wasm-host.lock"
	logFile    = "wasm-host.log"
)

// DefaultIdleExit is how long a host without guests waits before it
// exits.
const DefaultIdleExit = time.Minute

// Config configures the host process (Main).
type Config struct {
	// Dir holds the socket, a lock, the pid and the host's own log; one
	// host serves a Dir.
	Dir string
	// Wasm configures the guests' runtime.
	Wasm wasm.Config
	// IdleExit: the host exits once it has had no guest for this long
	// (0: DefaultIdleExit).
	IdleExit time.Duration
}

// PID is the pid the host serving dir wrote, and an error if there is none
// (the host may have exited since).
func PID(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// checkEvery is how often the host looks at its socket and its idleness.
const checkEvery = time.Second

// lockWait is how long a starting host waits for the lock of a host that
// is exiting.
const lockWait = 2 * time.Second

// Main is the host process's body (the agent's hidden guest-host
// subcommand): it serves its guests on Dir's socket until ctx ends, a
// client asks for a shutdown, it has been idle for Config.IdleExit, or its
// socket is gone; then it stops its guests and returns. A second host for
// the same Dir fails after lockWait.
func Main(ctx context.Context, cfg Config) error {
	if cfg.IdleExit <= 0 {
		cfg.IdleExit = DefaultIdleExit
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return err
	}
	// A host that has just been killed may still hold the lock: its socket
	// closes before its other files, and the agent that saw it go starts
	// this one at once.
	lock, err := dirlock.Dir(cfg.Dir, lockFile, "wasm guest host", lockWait)
	if err != nil {
		return err
	}
	defer lock.Close()
	rt, err := wasm.New(ctx, cfg.Wasm)
	if err != nil {
		return err
	}
	// Holding the lock, this host is the only one: a socket left behind
	// is a dead host's.
	sock := filepath.Join(cfg.Dir, SocketFile)
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		rt.Close(context.Background())
		return err
	}
	ln.SetUnlinkOnClose(false) // removed below, only while it is still ours
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		rt.Close(context.Background())
		return err
	}
	ours, err := os.Stat(sock)
	if err != nil {
		ln.Close()
		rt.Close(context.Background())
		return err
	}
	pid := filepath.Join(cfg.Dir, pidFile)
	if err := os.WriteFile(pid, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		ln.Close()
		rt.Close(context.Background())
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := newServer(rt, cancel)
	go func() {
		t := time.NewTicker(checkEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if fi, err := os.Stat(sock); err != nil || !os.SameFile(fi, ours) {
				cancel() // nothing can reach this host any more
				return
			}
			if s.closeIfIdle(cfg.IdleExit) {
				cancel()
				return
			}
		}
	}()
	err = serve(ctx, ln, s)
	if fi, serr := os.Stat(sock); serr == nil && os.SameFile(fi, ours) {
		os.Remove(sock)
		os.Remove(pid)
	}
	return err
}
