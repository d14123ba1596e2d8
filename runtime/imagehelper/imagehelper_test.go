package imagehelper

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// childEnv makes the test binary a helper process serving a fakeRuntime
// (see TestMain): the Helper tests start it as their helper executable.
const childEnv = "IMAGEHELPER_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		err := ServeHelper(context.Background(), os.Stdin, func(context.Context) (ImageRuntime, error) {
			return newFakeRuntime(), nil
		})
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serve runs Serve for rt on a socket in a temp dir until the test ends
// and returns a client of it.
func serve(t *testing.T, rt ImageRuntime) *client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, rt) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return newClient(sock, func(err error) string { return "lost: " + err.Error() })
}

// syncBuffer is one writer for both streams, as the agent's log is.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func wait(t *testing.T, c runtime.Container) runtime.ExitStatus {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("container %s did not exit", c.ID())
	}
	st, ok := c.Exit()
	if !ok {
		t.Fatal("Done closed but Exit not ready")
	}
	return st
}

func TestInfoAndPull(t *testing.T) {
	c := serve(t, newFakeRuntime())
	ctx := context.Background()
	info, err := c.info(ctx)
	if err != nil || info != newFakeRuntime().Info() {
		t.Fatalf("info: %+v, %v", info, err)
	}
	if err := c.pull(ctx, "busybox"); err != nil {
		t.Fatal(err)
	}
	err = c.pull(ctx, "missing")
	if !errors.Is(err, runtime.ErrImagePull) || !strings.Contains(err.Error(), "pull image missing") || errors.Is(err, ErrUnavailable) {
		t.Fatalf("pull missing: %v: want the runtime's error, wrapping runtime.ErrImagePull", err)
	}
}

func TestOutputInOrderAndExitStatus(t *testing.T) {
	c := serve(t, newFakeRuntime())
	var out, errOut syncBuffer
	var both syncBuffer
	ctr, err := c.start(context.Background(), runtime.ContainerSpec{ID: "a/b/0", Image: "app",
		Args: []string{"out:1 ", "err:2 ", "out:3 ", "exit:3"}, Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	if ctr.ID() != "a/b/0" {
		t.Errorf("ID %q", ctr.ID())
	}
	st := wait(t, ctr)
	if st.ExitCode != 3 || st.Reason != runtime.ReasonError || st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("exit status %+v: want the runtime's code 3, Error, its times", st)
	}
	if out.String() != "1 3 " || errOut.String() != "2 " {
		t.Errorf("stdout %q, stderr %q", out.String(), errOut.String())
	}

	// One writer for both streams sees the writes in their order.
	ctr, err = c.start(context.Background(), runtime.ContainerSpec{ID: "a/b/1", Image: "app",
		Args: []string{"out:1 ", "err:2 ", "out:3 "}, Stdout: &both, Stderr: &both})
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, ctr); st.ExitCode != 0 || st.Reason != runtime.ReasonCompleted {
		t.Errorf("exit status %+v", st)
	}
	if both.String() != "1 2 3 " {
		t.Errorf("output %q, want %q", both.String(), "1 2 3 ")
	}

	_, err = c.start(context.Background(), runtime.ContainerSpec{ID: "a/b/2", Image: "missing"})
	if !errors.Is(err, runtime.ErrImagePull) {
		t.Errorf("start of a missing image: %v", err)
	}
}

func TestStop(t *testing.T) {
	c := serve(t, newFakeRuntime())
	var out syncBuffer
	ctr, err := c.start(context.Background(), runtime.ContainerSpec{ID: "s", Image: "app", Args: []string{"out:ready", "wait"}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	for out.String() != "ready" {
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok := ctr.Exit(); ok {
		t.Fatal("Exit ready while the container runs")
	}
	if err := ctr.Stop(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	st := wait(t, ctr)
	if st.ExitCode != runtime.ExitCodeKilled || st.Message != "stopped with grace 3s" {
		t.Errorf("exit status %+v: want the runtime's, with the grace period it was given", st)
	}
	if err := ctr.Stop(time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestServeEndClosesRuntime: when Serve ends, the running containers'
// exits (from the runtime's Close) still reach the client.
func TestServeEndClosesRuntime(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, newFakeRuntime()) }()
	c := newClient(sock, func(err error) string { return "lost: " + err.Error() })
	ctr, err := c.start(context.Background(), runtime.ContainerSpec{ID: "w", Image: "app", Args: []string{"wait"}})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if st := wait(t, ctr); st.Message != "runtime closed" {
		t.Errorf("exit status %+v: want the runtime's Close", st)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// newTestHelper is a Helper whose process is this test binary serving a
// fakeRuntime.
func newTestHelper(t *testing.T, log *slog.Logger) *Helper {
	t.Helper()
	t.Setenv(childEnv, "1")
	h := NewHelper(Config{Path: os.Args[0], Socket: filepath.Join(t.TempDir(), "helper.sock"),
		Info: runtime.Info{Name: "runc", Version: "containerd://unknown"}, StartTimeout: 30 * time.Second, Log: log})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return h
}

func (h *Helper) current() *process {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.proc
}

func TestHelperStartsLazilyAndAgainAfterDying(t *testing.T) {
	h := newTestHelper(t, nil)
	if info := h.Info(); info.Version != "containerd://unknown" || h.current() != nil {
		t.Fatalf("Info %+v, process %v: want the configured info without a process", info, h.current())
	}
	ctx := context.Background()
	var out syncBuffer
	ctr, err := h.Start(ctx, runtime.ContainerSpec{ID: "x", Image: "app", Args: []string{"out:ready", "wait"}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	first := h.current()
	if first == nil || !first.alive() {
		t.Fatal("no helper process after Start")
	}
	if fi, err := os.Stat(h.cfg.Socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, %v: want mode 0600", fi, err)
	}
	for out.String() != "ready" {
		time.Sleep(5 * time.Millisecond)
	}

	// The helper dies: the container ends with a status that says so, and
	// a new helper is started at once (its runtime would remove what the
	// dead one left in containerd).
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := wait(t, ctr)
	if st.Reason != runtime.ReasonError || st.ExitCode != runtime.ExitCodeKilled ||
		!strings.Contains(st.Message, "containerd helper") || !strings.Contains(st.Message, "killed") {
		t.Fatalf("exit status %+v: want Error, %d and a message about the helper's death", st, runtime.ExitCodeKilled)
	}
	deadline := time.Now().Add(30 * time.Second)
	for p := h.current(); p == first || !p.alive(); p = h.current() {
		if time.Now().After(deadline) {
			t.Fatal("no new helper process after the first died with a running container")
		}
		time.Sleep(10 * time.Millisecond)
	}

	ctr, err = h.Start(ctx, runtime.ContainerSpec{ID: "y", Image: "app", Args: []string{"wait"}})
	if err != nil {
		t.Fatal(err)
	}
	second := h.current()
	if err := ctr.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, ctr); st.Message != "stopped with grace 1s" {
		t.Errorf("exit status %+v", st)
	}
	if err := h.Pull(ctx, "missing"); !errors.Is(err, runtime.ErrImagePull) {
		t.Errorf("pull: %v", err)
	}

	// Close ends the process; its running containers get the runtime's
	// exit status.
	ctr, err = h.Start(ctx, runtime.ContainerSpec{ID: "z", Image: "app", Args: []string{"wait"}})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := h.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, ctr); st.Message != "runtime closed" {
		t.Errorf("exit status after Close %+v", st)
	}
	if second.alive() || second.err != nil {
		t.Errorf("helper after Close: alive %v, exit %v: want a clean exit", second.alive(), second.err)
	}
	if _, err := os.Stat(h.cfg.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
	if err := h.Pull(ctx, "app"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Pull after Close: %v", err)
	}
}

func TestHelperThatCannotStart(t *testing.T) {
	script := filepath.Join(t.TempDir(), "broken-helper")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'containerd is not answering' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := NewHelper(Config{Path: script, Socket: filepath.Join(t.TempDir(), "helper.sock")})
	defer h.Close(context.Background())
	err := h.Pull(context.Background(), "app")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "containerd is not answering") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Pull: %v: want ErrUnavailable with the helper's exit and stderr", err)
	}
	_, err = h.Start(context.Background(), runtime.ContainerSpec{ID: "a", Image: "app"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Start: %v", err)
	}

	h = NewHelper(Config{Path: filepath.Join(t.TempDir(), "missing"), Socket: filepath.Join(t.TempDir(), "helper.sock")})
	defer h.Close(context.Background())
	if err := h.Pull(context.Background(), "app"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Pull with a missing executable: %v", err)
	}
}
