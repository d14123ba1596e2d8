package wasmhost_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/wasm"
	"github.com/wasmfleet/wasmfleet/runtime/wasmhost"
)

// TestMain serves as the guest host when a Host of a test starts this
// binary as one, as the agent's executable does with its hidden guest-host
// subcommand.
func TestMain(m *testing.M) {
	if os.Getenv(wasmhost.ChildEnv) != "" && len(os.Args) > 1 && os.Args[1] == "guest-host" {
		cfg, err := wasmhost.ParseArgs(os.Args[2:])
		if err == nil {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
			err = wasmhost.Main(ctx, cfg)
			stop()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "guest-host:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func newHost(t *testing.T, dir string, idle time.Duration) *wasmhost.Host {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return wasmhost.NewHost(wasmhost.HostConfig{
		Command: []string{exe, "guest-host"},
		Config:  wasmhost.Config{Dir: dir, Wasm: wasm.Config{CacheDir: filepath.Join(dir, "cache")}, IdleExit: idle},
	})
}

func module(t *testing.T, path string) runtime.Module {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return runtime.Module{Path: path, Digest: "sha256:" + hex.EncodeToString(sum[:])}
}

func tinySpec(t *testing.T, dir, id string) runtime.ContainerSpec {
	return runtime.ContainerSpec{ID: id, Module: module(t, "../../examples/tiny/tiny.wasm"), Args: []string{"tiny"},
		Log: runtime.LogFile{Path: filepath.Join(dir, "logs", strings.ReplaceAll(id, "/", "_")+".log")}}
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
	}
}

func hostPID(t *testing.T, dir string) int {
	t.Helper()
	pid, err := wasmhost.PID(dir)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func gone(pid int) bool { return syscall.Kill(pid, 0) != nil }

// closeHost shuts down the host of dir, whatever state the test left it in.
func closeHost(t *testing.T, dir string) {
	t.Cleanup(func() {
		h := newHost(t, dir, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("close the host: %v", err)
		}
	})
}

// TestGuestsOutliveTheAgent: a guest started through one Host goes on
// running after it detached; a second Host (the restarted agent) attaches to
// it, stops it and learns its exit.
func TestGuestsOutliveTheAgent(t *testing.T) {
	dir := t.TempDir()
	closeHost(t, dir)
	ctx := context.Background()
	first := newHost(t, dir, 0)
	spec := tinySpec(t, dir, "uid-1/main/0")
	c, err := first.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "tiny's line in its log", func() bool {
		b, _ := os.ReadFile(spec.Log.Path)
		return strings.Contains(string(b), " stdout F tiny: up, sleeping now.")
	})
	pid := hostPID(t, dir)
	if err := first.Detach(); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Start(ctx, tinySpec(t, dir, "uid-1/other/0")); err == nil {
		t.Fatal("Start after Detach succeeded")
	}
	select {
	case <-c.Done():
		t.Fatal("the handle ended with Detach")
	default:
	}

	second := newHost(t, dir, 0)
	ids, err := second.IDs(ctx)
	if err != nil || len(ids) != 1 || ids[0] != spec.ID {
		t.Fatalf("IDs = %v, %v; want [%s]", ids, err, spec.ID)
	}
	if _, ok, err := second.Attach(ctx, "uid-2/main/0"); ok || err != nil {
		t.Fatalf("Attach of an unknown id = %v, %v", ok, err)
	}
	again, ok, err := second.Attach(ctx, spec.ID)
	if !ok || err != nil {
		t.Fatalf("Attach = %v, %v", ok, err)
	}
	if _, ended := again.Exit(); ended {
		t.Fatal("the attached guest has ended")
	}
	if hostPID(t, dir) != pid {
		t.Fatal("a second host was started")
	}
	if err := again.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-again.Done()
	if es, _ := again.Exit(); es.ExitCode != runtime.ExitCodeKilled || es.Reason != runtime.ReasonError {
		t.Fatalf("exit after Stop = %+v", es)
	}
	// The exit is kept until removed: an agent that restarts now learns it.
	third := newHost(t, dir, 0)
	ended, ok, err := third.Attach(ctx, spec.ID)
	if !ok || err != nil {
		t.Fatalf("Attach of the stopped guest = %v, %v", ok, err)
	}
	if es, done := ended.Exit(); !done || es.ExitCode != runtime.ExitCodeKilled {
		t.Fatalf("exit seen by a new attach = %+v, %v", es, done)
	}
	if err := third.Remove(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if ids, err := second.IDs(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("IDs after Remove = %v, %v", ids, err)
	}
	if err := second.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the host to exit after Close", func() bool { return gone(pid) })
}

// TestHostErrors: what the runtime says of bad modules crosses the process
// boundary with its kind; a trap, a memory bomb and a stopped infinite
// loop reach their handles as they end.
func TestHostErrors(t *testing.T) {
	dir := t.TempDir()
	closeHost(t, dir)
	ctx := context.Background()
	h := newHost(t, dir, 0)

	bad := module(t, "../wasm/testdata/nope.wasm")
	var inv *runtime.InvalidModuleError
	if err := h.Prepare(ctx, bad); !errors.As(err, &inv) || inv.Digest != bad.Digest || strings.Contains(inv.Err.Error(), "invalid module") {
		t.Fatalf("Prepare(not wasm) = %v; want an InvalidModuleError with its reason alone", err)
	}
	tiny := module(t, "../../examples/tiny/tiny.wasm")
	wrong := runtime.Module{Path: tiny.Path, Digest: "sha256:" + strings.Repeat("0", 64)}
	if err := h.Prepare(ctx, wrong); !errors.Is(err, runtime.ErrDigestMismatch) {
		t.Fatalf("Prepare(wrong digest) = %v; want ErrDigestMismatch", err)
	}
	spec := tinySpec(t, dir, "uid-1/trap/0")
	spec.Module = module(t, "../wasm/testdata/trap.wasm")
	c, err := h.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the trapping guest did not end")
	}
	if es, _ := c.Exit(); es.ExitCode != runtime.ExitCodeTrap || es.Reason != runtime.ReasonError || es.Message == "" {
		t.Fatalf("exit of a trap = %+v", es)
	}
	if _, err := h.Start(ctx, tinySpec(t, dir, "uid-1/trap/0")); err == nil {
		t.Fatal("a second start with a held id succeeded")
	}

	// The memory limit crosses to the host: a guest that needs more is
	// OOMKilled.
	bomb := tinySpec(t, dir, "uid-1/bomb/0")
	bomb.Module, bomb.MemoryLimit = module(t, "../wasm/testdata/growtrap.wasm"), 1<<20
	if c, err = h.Start(ctx, bomb); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	if es, _ := c.Exit(); es.Reason != runtime.ReasonOOMKilled || es.ExitCode != runtime.ExitCodeKilled {
		t.Fatalf("exit of a memory bomb = %+v", es)
	}
	// A guest in an infinite loop stops within its grace period.
	spin := tinySpec(t, dir, "uid-1/spin/0")
	spin.Module = module(t, "../wasm/testdata/spin.wasm")
	if c, err = h.Start(ctx, spin); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	if es, _ := c.Exit(); es.ExitCode != runtime.ExitCodeKilled || es.Reason != runtime.ReasonError {
		t.Fatalf("exit of a stopped infinite loop = %+v", es)
	}
}

// TestHostDeath: guests end with the host, their handles say so, and the
// next Start starts a new host.
func TestHostDeath(t *testing.T) {
	dir := t.TempDir()
	closeHost(t, dir)
	ctx := context.Background()
	h := newHost(t, dir, 0)
	c, err := h.Start(ctx, tinySpec(t, dir, "uid-1/main/0"))
	if err != nil {
		t.Fatal(err)
	}
	pid := hostPID(t, dir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the handle did not end with the host")
	}
	if es, _ := c.Exit(); es.ExitCode != runtime.ExitCodeKilled || !strings.Contains(es.Message, "guest host ended") {
		t.Fatalf("exit = %+v", es)
	}
	if _, err := h.Start(ctx, tinySpec(t, dir, "uid-1/main/1")); err != nil {
		t.Fatal(err)
	}
	if hostPID(t, dir) == pid {
		t.Fatal("no new host")
	}
}

// TestHostExitsWhenUnreachable: a host whose socket is gone stops its
// guests and exits; so does one left without agent and guests for its
// idle time.
func TestHostExitsWhenUnreachable(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	h := newHost(t, dir, 0)
	if _, err := h.Start(ctx, tinySpec(t, dir, "uid-1/main/0")); err != nil {
		t.Fatal(err)
	}
	pid := hostPID(t, dir)
	h.Detach()
	if err := os.Remove(filepath.Join(dir, wasmhost.SocketFile)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the host to exit without its socket", func() bool { return gone(pid) })

	idle := newHost(t, dir, time.Second)
	if err := idle.Prepare(ctx, module(t, "../../examples/tiny/tiny.wasm")); err != nil {
		t.Fatal(err)
	}
	pid = hostPID(t, dir)
	idle.Detach()
	waitFor(t, "the idle host to exit", func() bool { return gone(pid) })
	if _, err := os.Stat(filepath.Join(dir, wasmhost.SocketFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the idle host left its socket: %v", err)
	}
}

// TestForeignHost: a host that does not speak this agent's protocol (one
// left by another version) is not taken for one: the agent says so and
// starts no second host beside it.
func TestForeignHost(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, wasmhost.SocketFile))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })}
	go srv.Serve(ln)
	defer srv.Close()
	h := newHost(t, dir, 0)
	_, err = h.Start(context.Background(), tinySpec(t, dir, "uid-1/main/0"))
	if !errors.Is(err, wasmhost.ErrUnavailable) || !strings.Contains(err.Error(), `protocol ""`) {
		t.Fatalf("Start against a foreign host = %v", err)
	}
	if _, err := wasmhost.PID(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a host was started beside the foreign one: %v", err)
	}
	if _, _, err := h.Attach(context.Background(), "uid-1/main/0"); err == nil {
		t.Fatal("Attach to a foreign host: no error")
	}
}

// TestHostExitsWhenIdle: a host exits once it has had no guest for its
// idle time, even with an agent connected; a guest, running or ended and
// not yet removed by the connected agent, keeps it. The agent's next start
// gets a new host.
func TestHostExitsWhenIdle(t *testing.T) {
	dir := t.TempDir()
	closeHost(t, dir)
	ctx := context.Background()
	h := newHost(t, dir, time.Second)
	spec := tinySpec(t, dir, "uid-1/main/0")
	c, err := h.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	pid := hostPID(t, dir)
	time.Sleep(2500 * time.Millisecond)
	if gone(pid) {
		t.Fatal("the host exited while its guest ran")
	}
	if err := c.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	time.Sleep(2500 * time.Millisecond)
	if gone(pid) {
		t.Fatal("the host exited while it held an ended guest for its agent")
	}
	if err := h.Remove(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle host to exit", func() bool { return gone(pid) })
	if _, err := h.Start(ctx, tinySpec(t, dir, "uid-1/main/1")); err != nil {
		t.Fatalf("start after the host exited: %v", err)
	}
	if hostPID(t, dir) == pid {
		t.Fatal("no new host")
	}
}
