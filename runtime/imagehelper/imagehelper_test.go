package imagehelper

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// childArg makes the test binary a helper process serving a fakeRuntime
// (see TestMain): the Helper tests start it as their helper executable
// with the arguments childArg and the fake's state directory. Arguments,
// not the environment, so that the tests may run in parallel.
const childArg = "imagehelper-test-child"

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == childArg {
		err := ServeHelper(context.Background(), os.Stdin, func(context.Context) (ImageRuntime, error) {
			return newFakeRuntime(os.Args[2]), nil
		})
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testTimeout bounds every wait of the tests.
const testTimeout = 10 * time.Second

// serve runs Serve for rt on a socket in a temp dir and returns a client of
// it and a func that ends Serve (if it still runs) and returns its error.
// The test's end ends it too.
func serve(t *testing.T, rt ImageRuntime) (*client, func() error) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, rt) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(testTimeout):
			return errors.New("Serve did not return")
		}
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return newClient(sock), stop
}

// waitFor polls cond until it holds, failing the test after testTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wait returns c's exit status once it ended.
func wait(t *testing.T, c runtime.Container) runtime.ExitStatus {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(testTimeout):
		t.Fatalf("container %s did not exit", c.ID())
	}
	st, ok := c.Exit()
	if !ok {
		t.Fatal("Done closed but Exit not ready")
	}
	return st
}

// running fails the test if c ended.
func running(t *testing.T, c runtime.Container) {
	t.Helper()
	if st, ok := c.Exit(); ok {
		t.Fatalf("container %s ended (%+v): want it running", c.ID(), st)
	}
	select {
	case <-c.Done():
		t.Fatalf("container %s: Done closed, want it running", c.ID())
	default:
	}
}

// readLog returns the log file's content ("" before it exists).
func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// waitLog waits until the log file holds want.
func waitLog(t *testing.T, path, want string) {
	t.Helper()
	waitFor(t, "log "+path+" to hold "+strconv.Quote(want), func() bool { return readLog(t, path) == want })
}

func logFile(dir, name string) runtime.LogFile {
	return runtime.LogFile{Path: filepath.Join(dir, name+".log"), MaxFileBytes: 1 << 20, MaxFiles: 2}
}

func TestInfoAndPull(t *testing.T) {
	t.Parallel()
	c, _ := serve(t, newFakeRuntime(""))
	ctx := context.Background()
	info, err := c.info(ctx)
	if err != nil || info != newFakeRuntime("").Info() {
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

// TestStartLogAndWait: /start answers once the container started, its
// output goes to its log file, /wait answers its exit status, and again
// for a container that ended (the runtime holds it until Remove).
func TestStartLogAndWait(t *testing.T) {
	t.Parallel()
	rt := newFakeRuntime("")
	c, _ := serve(t, rt)
	ctx := context.Background()
	dir := t.TempDir()
	lf := logFile(dir, "a")
	err := c.start(ctx, runtime.ContainerSpec{ID: "ns/pod/a/0", Image: "app", Log: lf,
		Args: []string{"out:1", "err:2", "out:3", "exit:3"}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.wait(ctx, "ns/pod/a/0")
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != 3 || st.Reason != runtime.ReasonError || st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("exit status %+v: want the runtime's code 3, Error, its times", st)
	}
	if got, want := readLog(t, lf.Path), "stdout 1\nstderr 2\nstdout 3\n"; got != want {
		t.Errorf("log %q, want %q", got, want)
	}
	// An ended container is held: its status comes again.
	if again, err := c.wait(ctx, "ns/pod/a/0"); err != nil || !again.FinishedAt.Equal(st.FinishedAt) || again.ExitCode != 3 {
		t.Errorf("second wait: %+v, %v: want %+v", again, err, st)
	}

	// The spec reaches the runtime whole, but for its writers (a detached
	// container writes its log itself) and Module (an image runtime has
	// none).
	spec := runtime.ContainerSpec{ID: "ns/pod/b/0", Image: "registry.example/app:1", Log: logFile(dir, "b"),
		Command: []string{"/app"}, Args: []string{"out:b"}, Env: []runtime.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "x=y"}},
		Mounts:      []runtime.Mount{{HostPath: dir, GuestPath: "/data", ReadOnly: true}, {HostPath: "/tmp", GuestPath: "/tmp"}},
		MemoryLimit: 64 << 20, Module: runtime.Module{Path: "/m.wasm", Digest: "sha256:00"}, Stdout: io.Discard, Stderr: io.Discard}
	if err := c.start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	spec.Module, spec.Stdout, spec.Stderr = runtime.Module{}, nil, nil
	if got := rt.container("ns/pod/b/0").spec; !reflect.DeepEqual(got, spec) {
		t.Errorf("the runtime started\n%+v\nwant\n%+v", got, spec)
	}
	if st, err := c.wait(ctx, "ns/pod/b/0"); err != nil || st.ExitCode != 0 || st.Reason != runtime.ReasonCompleted {
		t.Errorf("exit status %+v, %v", st, err)
	}

	err = c.start(ctx, runtime.ContainerSpec{ID: "ns/pod/c/0", Image: "missing", Log: logFile(dir, "c")})
	if !errors.Is(err, runtime.ErrImagePull) || errors.Is(err, ErrUnavailable) {
		t.Errorf("start of a missing image: %v", err)
	}
	err = c.start(ctx, runtime.ContainerSpec{ID: "ns/pod/d/0", Image: "app", Args: []string{"out:x"}})
	if err == nil || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no log file") {
		t.Errorf("start without a log file: %v: want the runtime's refusal", err)
	}
	if rt.container("ns/pod/c/0") != nil || rt.container("ns/pod/d/0") != nil {
		t.Error("the runtime holds containers whose start failed")
	}

	_, err = c.wait(ctx, "ns/pod/none/0")
	if !errors.Is(err, errNotFound) || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "ns/pod/none/0") {
		t.Errorf("wait for an unknown container: %v: want errNotFound", err)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	c, _ := serve(t, newFakeRuntime(""))
	ctx := context.Background()
	lf := logFile(t.TempDir(), "s")
	if err := c.start(ctx, runtime.ContainerSpec{ID: "s", Image: "app", Log: lf, Args: []string{"out:ready", "wait", "out:never"}}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, lf.Path, "stdout ready\n")
	if err := c.stop(ctx, "s", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := c.wait(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode != runtime.ExitCodeKilled || st.Reason != runtime.ReasonError || st.Message != "stopped with grace 3s" {
		t.Errorf("exit status %+v: want the runtime's, with the grace period it was given", st)
	}
	if got := readLog(t, lf.Path); got != "stdout ready\n" {
		t.Errorf("log %q after stop", got)
	}
	if err := c.stop(ctx, "s", time.Second); err != nil {
		t.Errorf("stop of an ended container: %v", err)
	}
	if err := c.stop(ctx, "unknown", time.Second); err != nil {
		t.Errorf("stop of an unknown container: %v", err)
	}
}

// TestAttachIDsRemove: the runtime holds its containers, running or
// ended, until Remove, which kills a running one first.
func TestAttachIDsRemove(t *testing.T) {
	t.Parallel()
	rt := newFakeRuntime("")
	c, _ := serve(t, rt)
	ctx := context.Background()
	dir := t.TempDir()
	if ids, err := c.ids(ctx); err != nil || ids == nil || len(ids) != 0 {
		t.Fatalf("ids of an empty runtime: %q, %v: want []", ids, err)
	}
	for _, id := range []string{"ns/p/run/0", "ns/p/end/0"} {
		args := []string{"wait"}
		if strings.Contains(id, "end") {
			args = []string{"exit:0"}
		}
		if err := c.start(ctx, runtime.ContainerSpec{ID: id, Image: "app", Log: logFile(dir, filepath.Base(filepath.Dir(id))), Args: args}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.wait(ctx, "ns/p/end/0"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ns/p/run/0", "ns/p/end/0"} {
		if found, err := c.attach(ctx, id); err != nil || !found {
			t.Errorf("attach %s: %v, %v: want found", id, found, err)
		}
	}
	if found, err := c.attach(ctx, "ns/p/none/0"); err != nil || found {
		t.Errorf("attach of an unknown container: %v, %v: want not found", found, err)
	}
	if ids, err := c.ids(ctx); err != nil || !slices.Equal(ids, []string{"ns/p/end/0", "ns/p/run/0"}) {
		t.Errorf("ids: %q, %v", ids, err)
	}

	// A wait under way learns the end that Remove causes.
	run := rt.container("ns/p/run/0")
	attached := rt.attaches()
	waited := make(chan error, 1)
	go func() {
		st, err := c.wait(ctx, "ns/p/run/0")
		if err == nil && (st.ExitCode != runtime.ExitCodeKilled || st.Message != "removed") {
			err = errors.New("exit status " + st.Reason + ": " + st.Message)
		}
		waited <- err
	}()
	// The server looks the container up before it waits for its end.
	waitFor(t, "the wait to reach the runtime", func() bool { return rt.attaches() > attached })
	for _, id := range []string{"ns/p/run/0", "ns/p/end/0", "ns/p/none/0"} {
		if err := c.remove(ctx, id); err != nil {
			t.Errorf("remove %s: %v", id, err)
		}
	}
	if st, ok := run.Exit(); !ok || st.Message != "removed" {
		t.Errorf("removed container: %+v, ended %v: want it killed by Remove", st, ok)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("wait during Remove: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the wait did not return after Remove")
	}
	if ids, err := c.ids(ctx); err != nil || len(ids) != 0 {
		t.Errorf("ids after Remove: %q, %v", ids, err)
	}
	for _, id := range []string{"ns/p/run/0", "ns/p/end/0"} {
		if found, err := c.attach(ctx, id); err != nil || found {
			t.Errorf("attach %s after Remove: %v, %v", id, found, err)
		}
		if _, err := c.wait(ctx, id); !errors.Is(err, errNotFound) {
			t.Errorf("wait %s after Remove: %v", id, err)
		}
	}
}

// TestServeEndDetaches: when Serve's ctx ends, the runtime is detached:
// its containers run on (and write their log), the waits under way fail as
// the helper is gone, and the runtime fails every call afterwards.
func TestServeEndDetaches(t *testing.T) {
	t.Parallel()
	rt := newFakeRuntime("")
	c, stop := serve(t, rt)
	ctx := context.Background()
	dir := t.TempDir()
	lf, trigger := logFile(dir, "d"), filepath.Join(dir, "go-on")
	err := c.start(ctx, runtime.ContainerSpec{ID: "d", Image: "app", Log: lf, Args: []string{"out:ready", "until:" + trigger, "out:after", "exit:4"}})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, lf.Path, "stdout ready\n")
	ctr := rt.container("d")
	attached := rt.attaches()
	waited := make(chan error, 1)
	go func() {
		_, err := c.wait(ctx, "d")
		waited <- err
	}()
	waitFor(t, "the wait to reach the runtime", func() bool { return rt.attaches() > attached })

	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	select {
	case err := <-waited:
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("wait when Serve ended: %v: want ErrUnavailable", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the wait under way did not end with Serve")
	}
	if _, err := c.ids(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("ids after Serve ended: %v: want ErrUnavailable", err)
	}
	running(t, ctr)
	if !rt.isDetached() {
		t.Error("the runtime is not detached after Serve ended")
	}
	if _, _, err := rt.Attach(ctx, "d"); err == nil {
		t.Error("Attach of the runtime works after Serve ended: want it detached")
	}

	// The container runs on, on its own.
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, ctr); st.ExitCode != 4 || st.Reason != runtime.ReasonError {
		t.Errorf("exit status %+v: want the container's own exit", st)
	}
	if got, want := readLog(t, lf.Path), "stdout ready\nstdout after\n"; got != want {
		t.Errorf("log %q, want %q", got, want)
	}
}

// TestServeClose: /close kills and removes every container, answers, and
// ends Serve; the waits under way learn the exits.
func TestServeClose(t *testing.T) {
	t.Parallel()
	rt := newFakeRuntime("")
	c, stop := serve(t, rt)
	ctx := context.Background()
	dir := t.TempDir()
	for _, id := range []string{"w", "e"} {
		args := []string{"out:ready", "wait"}
		if id == "e" {
			args = []string{"exit:0"}
		}
		if err := c.start(ctx, runtime.ContainerSpec{ID: id, Image: "app", Log: logFile(dir, id), Args: args}); err != nil {
			t.Fatal(err)
		}
	}
	waitLog(t, logFile(dir, "w").Path, "stdout ready\n")
	w := rt.container("w")
	if err := c.close(ctx); err != nil {
		t.Fatal(err)
	}
	if st, ok := w.Exit(); !ok || st.Message != "runtime closed" || st.ExitCode != runtime.ExitCodeKilled {
		t.Errorf("container after /close: %+v, ended %v: want it killed by the runtime's Close", st, ok)
	}
	if rt.container("w") != nil || rt.container("e") != nil {
		t.Error("the runtime holds containers after /close")
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve after /close: %v", err)
	}
	if _, err := c.info(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("info after /close: %v: want ErrUnavailable, Serve ended", err)
	}
}

// TestServeCloseAnswersWaits: a /wait under way when /close kills its
// container answers the container's exit.
func TestServeCloseAnswersWaits(t *testing.T) {
	t.Parallel()
	rt := newFakeRuntime("")
	c, _ := serve(t, rt)
	ctx := context.Background()
	lf := logFile(t.TempDir(), "w")
	if err := c.start(ctx, runtime.ContainerSpec{ID: "w", Image: "app", Log: lf, Args: []string{"out:ready", "wait"}}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, lf.Path, "stdout ready\n")
	type result struct {
		st  runtime.ExitStatus
		err error
	}
	attached := rt.attaches()
	waited := make(chan result, 1)
	go func() {
		st, err := c.wait(ctx, "w")
		waited <- result{st, err}
	}()
	waitFor(t, "the wait to reach the runtime", func() bool { return rt.attaches() > attached })
	if err := c.close(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-waited
	if r.err != nil || r.st.Message != "runtime closed" {
		t.Errorf("wait under way during /close: %+v, %v: want the exit of the runtime's Close", r.st, r.err)
	}
}

// newTestHelper is a Helper whose process is this test binary serving a
// fakeRuntime with state directory state; marker is its Config.Marker.
// The test's end closes it.
func newTestHelper(t *testing.T, state, marker string) *Helper {
	t.Helper()
	h := NewHelper(Config{Path: os.Args[0], Args: []string{childArg, state}, Socket: filepath.Join(t.TempDir(), "h.sock"),
		Marker: marker, Info: runtime.Info{Name: "runc", Version: "containerd://unknown"}, StartTimeout: testTimeout})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return h
}

// followers is how many handles still follow their containers.
func (h *Helper) followers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.handles)
}

// waitWaiting waits until the fakeRuntime with state directory state
// has recorded that container id waits (in a wait or until: step): a
// helper process may die from then on without the container repeating
// steps in the next one.
func waitWaiting(t *testing.T, state, id string) {
	t.Helper()
	waitFor(t, id+" to wait", func() bool {
		rec, ok, err := newFakeRuntime(state).load(id)
		if err != nil {
			t.Fatal(err)
		}
		if !ok || rec.Ended || rec.Step >= len(rec.Args) {
			return false
		}
		what, _, _ := strings.Cut(rec.Args[rec.Step], ":")
		return what == "wait" || what == "until"
	})
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestHelperLazy: a Helper starts no process until a container may exist:
// Info is configured, and while the Marker does not exist, IDs, Attach
// and Remove answer "nothing"; a start without a log file is refused
// before. The first Start starts the process and creates the Marker.
func TestHelperLazy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	h := newTestHelper(t, t.TempDir(), marker)
	ctx := context.Background()
	if info := h.Info(); info.Version != "containerd://unknown" {
		t.Errorf("Info %+v: want the configured info", info)
	}
	if ids, err := h.IDs(ctx); err != nil || len(ids) != 0 {
		t.Errorf("IDs: %q, %v", ids, err)
	}
	if c, found, err := h.Attach(ctx, "x"); err != nil || found || c != nil {
		t.Errorf("Attach: %v, %v, %v", c, found, err)
	}
	if err := h.Remove(ctx, "x"); err != nil {
		t.Errorf("Remove: %v", err)
	}
	_, err := h.Start(ctx, runtime.ContainerSpec{ID: "x", Image: "app", Args: []string{"out:x"}})
	if err == nil || !strings.Contains(err.Error(), "no log file") || errors.Is(err, ErrUnavailable) {
		t.Errorf("Start without a log file: %v", err)
	}
	if p := h.current(); p != nil {
		t.Fatalf("helper process (pid %d) before the first container", p.cmd.Process.Pid)
	}
	if exists(marker) {
		t.Fatal("marker created before the first container")
	}

	lf := logFile(dir, "x")
	ctr, err := h.Start(ctx, runtime.ContainerSpec{ID: "ns/p/x/0", Image: "app", Log: lf, Args: []string{"out:1", "err:2", "exit:3"}})
	if err != nil {
		t.Fatal(err)
	}
	p := h.current()
	if p == nil || !p.alive() {
		t.Fatal("no helper process after Start")
	}
	if !exists(marker) {
		t.Error("no marker after Start")
	}
	if fi, err := os.Stat(h.cfg.Socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket: %v, %v: want mode 0600", fi, err)
	}
	if ctr.ID() != "ns/p/x/0" {
		t.Errorf("ID %q", ctr.ID())
	}
	st := wait(t, ctr)
	if st.ExitCode != 3 || st.Reason != runtime.ReasonError || st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("exit status %+v", st)
	}
	if got, want := readLog(t, lf.Path), "stdout 1\nstderr 2\n"; got != want {
		t.Errorf("log %q, want %q", got, want)
	}

	// The ended container is held until Remove.
	if ids, err := h.IDs(ctx); err != nil || !slices.Equal(ids, []string{"ns/p/x/0"}) {
		t.Errorf("IDs: %q, %v", ids, err)
	}
	again, found, err := h.Attach(ctx, "ns/p/x/0")
	if err != nil || !found {
		t.Fatalf("Attach of the ended container: %v, %v", found, err)
	}
	if st2 := wait(t, again); st2.ExitCode != 3 || !st2.FinishedAt.Equal(st.FinishedAt) {
		t.Errorf("exit status through Attach %+v, want %+v", st2, st)
	}
	if err := again.Stop(time.Second); err != nil {
		t.Errorf("Stop of an ended container: %v", err)
	}
	if err := h.Remove(ctx, "ns/p/x/0"); err != nil {
		t.Fatal(err)
	}
	if ids, err := h.IDs(ctx); err != nil || len(ids) != 0 {
		t.Errorf("IDs after Remove: %q, %v", ids, err)
	}
	if _, found, err := h.Attach(ctx, "ns/p/x/0"); err != nil || found {
		t.Errorf("Attach after Remove: %v, %v", found, err)
	}
	if err := h.Pull(ctx, "missing"); !errors.Is(err, runtime.ErrImagePull) || errors.Is(err, ErrUnavailable) {
		t.Errorf("Pull of a missing image: %v", err)
	}
	if _, err := h.Start(ctx, runtime.ContainerSpec{ID: "m", Image: "missing", Log: logFile(dir, "m")}); !errors.Is(err, runtime.ErrImagePull) {
		t.Errorf("Start of a missing image: %v", err)
	}
	if h.current() != p || !p.alive() {
		t.Error("a new helper process, but the first one did not die")
	}
}

// TestHelperStopAndRemove: a handle's Stop carries its grace period to the
// runtime; Remove of a running container ends its handle.
func TestHelperStopAndRemove(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := newTestHelper(t, t.TempDir(), filepath.Join(dir, "marker"))
	ctx := context.Background()
	lf := logFile(dir, "s")
	ctr, err := h.Start(ctx, runtime.ContainerSpec{ID: "s", Image: "app", Log: lf, Args: []string{"out:ready", "wait"}})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, lf.Path, "stdout ready\n")
	running(t, ctr)
	if err := ctr.Stop(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, ctr); st.ExitCode != runtime.ExitCodeKilled || st.Reason != runtime.ReasonError || st.Message != "stopped with grace 2s" {
		t.Errorf("exit status %+v", st)
	}

	lf = logFile(dir, "r")
	ctr, err = h.Start(ctx, runtime.ContainerSpec{ID: "r", Image: "app", Log: lf, Args: []string{"out:ready", "wait"}})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, lf.Path, "stdout ready\n")
	if err := h.Remove(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	// The handle learns the kill (its wait was under way) or that the
	// container is gone (its wait came after the removal).
	st := wait(t, ctr)
	if st.ExitCode != runtime.ExitCodeKilled || st.Reason != runtime.ReasonError ||
		(st.Message != "removed" && st.Message != "the container is gone from containerd") {
		t.Errorf("exit status after Remove %+v", st)
	}
	if ids, err := h.IDs(ctx); err != nil || !slices.Equal(ids, []string{"s"}) {
		t.Errorf("IDs: %q, %v", ids, err)
	}
}

// TestHelperExec: processes run in a container through the helper; a
// deadline ends one (the helper kills it), and a container that ended
// refuses. The helper also names the container's network namespace.
func TestHelperExec(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := newTestHelper(t, t.TempDir(), filepath.Join(dir, "marker"))
	ctx := context.Background()
	lf := logFile(dir, "x")
	ctr, err := h.Start(ctx, runtime.ContainerSpec{ID: "x", Image: "app", Log: lf, Args: []string{"out:ready", "wait"}})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, lf.Path, "stdout ready\n")
	ex := ctr.(runtime.Execer)
	if res, err := ex.Exec(ctx, []string{"echo", "hello", "there"}); err != nil || res.ExitCode != 0 || string(res.Output) != "hello there\n" {
		t.Errorf("echo: %+v, %v", res, err)
	}
	if res, err := ex.Exec(ctx, []string{"exit", "3"}); err != nil || res.ExitCode != 3 {
		t.Errorf("exit 3: %+v, %v", res, err)
	}
	if _, err := ex.Exec(ctx, []string{"nothing"}); err == nil || !strings.Contains(err.Error(), "no such program") {
		t.Errorf("an unknown program: %v", err)
	}
	if ns, err := ctr.(runtime.Networked).NetNS(ctx); err != nil || ns != "/fake/x/ns/net" {
		t.Errorf("network namespace %q, %v", ns, err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := ex.Exec(short, []string{"sleep"}); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnavailable) {
		t.Errorf("past its deadline: %v", err)
	}
	if err := ctr.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	wait(t, ctr)
	if _, err := ex.Exec(ctx, []string{"echo"}); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("exec in an ended container: %v", err)
	}
}

// TestHelperKilled: when the helper process dies, the containers run on
// and their handles stay open; the handles start a new process, which
// finds the containers again, and learn their later exits through it.
func TestHelperKilled(t *testing.T) {
	t.Parallel()
	dir, state := t.TempDir(), t.TempDir()
	h := newTestHelper(t, state, filepath.Join(dir, "marker"))
	ctx := context.Background()
	trigger := filepath.Join(dir, "go-on")
	lfA, lfB := logFile(dir, "a"), logFile(dir, "b")
	a, err := h.Start(ctx, runtime.ContainerSpec{ID: "ns/p/a/0", Image: "app", Log: lfA, Args: []string{"out:ready", "wait"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Start(ctx, runtime.ContainerSpec{ID: "ns/p/b/0", Image: "app", Log: lfB, Args: []string{"out:ready", "until:" + trigger, "out:after", "exit:4"}})
	if err != nil {
		t.Fatal(err)
	}
	waitWaiting(t, state, "ns/p/a/0")
	waitWaiting(t, state, "ns/p/b/0")
	if readLog(t, lfA.Path) != "stdout ready\n" || readLog(t, lfB.Path) != "stdout ready\n" {
		t.Fatalf("logs %q, %q before the kill", readLog(t, lfA.Path), readLog(t, lfB.Path))
	}
	first := h.current()

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the helper process to die", func() bool { return !first.alive() })
	running(t, a)
	running(t, b)

	// The handles start a new process on their own (nothing else asks).
	var second *process
	waitFor(t, "a new helper process", func() bool {
		second = h.current()
		return second != first && second.alive()
	})
	running(t, a)
	running(t, b)

	// b ends on its own; its handle learns how through the new process.
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, b); st.ExitCode != 4 || st.Reason != runtime.ReasonError || st.StartedAt.IsZero() {
		t.Errorf("b's exit status %+v: want its own exit 4", st)
	}
	if got, want := readLog(t, lfB.Path), "stdout ready\nstdout after\n"; got != want {
		t.Errorf("b's log %q, want %q", got, want)
	}
	// a is stopped through the new process.
	running(t, a)
	if err := a.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, a); st.ExitCode != runtime.ExitCodeKilled || st.Message != "stopped with grace 1s" {
		t.Errorf("a's exit status %+v", st)
	}
	if got := readLog(t, lfA.Path); got != "stdout ready\n" {
		t.Errorf("a's log %q", got)
	}
	if ids, err := h.IDs(ctx); err != nil || !slices.Equal(ids, []string{"ns/p/a/0", "ns/p/b/0"}) {
		t.Errorf("IDs: %q, %v", ids, err)
	}
	if h.current() != second {
		t.Error("yet another helper process")
	}
}

// TestHelperDetach: Detach ends the process cleanly and leaves the
// containers running and their handles open; every method fails after
// it. A new Helper (the agent restarted) finds the containers again.
func TestHelperDetach(t *testing.T) {
	t.Parallel()
	dir, state := t.TempDir(), t.TempDir()
	marker := filepath.Join(dir, "marker")
	h := newTestHelper(t, state, marker)
	ctx := context.Background()
	lf := logFile(dir, "d")
	ctr, err := h.Start(ctx, runtime.ContainerSpec{ID: "ns/p/d/0", Image: "app", Log: lf, Args: []string{"out:ready", "wait"}})
	if err != nil {
		t.Fatal(err)
	}
	waitWaiting(t, state, "ns/p/d/0")
	p := h.current()
	if err := h.Detach(); err != nil {
		t.Fatal(err)
	}
	if p.alive() || p.err != nil {
		t.Errorf("helper process after Detach: alive %v, exit %v: want a clean exit", p.alive(), p.err)
	}
	waitFor(t, "the handles to stop following", func() bool { return h.followers() == 0 })
	running(t, ctr)
	if _, err := h.Start(ctx, runtime.ContainerSpec{ID: "n", Image: "app", Log: logFile(dir, "n")}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Start after Detach: %v", err)
	}
	if _, err := h.IDs(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("IDs after Detach: %v", err)
	}
	if _, _, err := h.Attach(ctx, "ns/p/d/0"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Attach after Detach: %v", err)
	}
	if err := h.Pull(ctx, "app"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Pull after Detach: %v", err)
	}
	if err := h.Detach(); err != nil {
		t.Errorf("second Detach: %v", err)
	}
	if h.current() != p {
		t.Error("a new helper process after Detach")
	}

	// The agent restarts: its new Helper finds the container.
	h2 := newTestHelper(t, state, marker)
	if ids, err := h2.IDs(ctx); err != nil || !slices.Equal(ids, []string{"ns/p/d/0"}) {
		t.Fatalf("IDs of the new Helper: %q, %v", ids, err)
	}
	again, found, err := h2.Attach(ctx, "ns/p/d/0")
	if err != nil || !found {
		t.Fatalf("Attach: %v, %v", found, err)
	}
	running(t, again)
	if err := again.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, again); st.ExitCode != runtime.ExitCodeKilled || st.Message != "stopped with grace 1s" {
		t.Errorf("exit status %+v", st)
	}
	running(t, ctr) // the detached Helper's handle learns nothing more
	if got := readLog(t, lf.Path); got != "stdout ready\n" {
		t.Errorf("log %q", got)
	}
}

// TestHelperClose: Close has the runtime kill and remove its containers,
// running or ended, their exits reach the handles that follow them, and
// the process ends cleanly.
func TestHelperClose(t *testing.T) {
	t.Parallel()
	dir, state := t.TempDir(), t.TempDir()
	marker := filepath.Join(dir, "marker")
	ctx := context.Background()
	h := newTestHelper(t, state, marker)
	lf := logFile(dir, "w")
	ctr, err := h.Start(ctx, runtime.ContainerSpec{ID: "w", Image: "app", Log: lf, Args: []string{"out:ready", "wait"}})
	if err != nil {
		t.Fatal(err)
	}
	ended, err := h.Start(ctx, runtime.ContainerSpec{ID: "e", Image: "app", Log: logFile(dir, "e")})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, ended)
	waitLog(t, lf.Path, "stdout ready\n")
	if ids, err := h.IDs(ctx); err != nil || !slices.Equal(ids, []string{"e", "w"}) {
		t.Fatalf("IDs before Close: %q, %v", ids, err)
	}
	p := h.current()
	cctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	if err := h.Close(cctx); err != nil {
		t.Fatal(err)
	}
	// Killed by the runtime: through the handle's Stop without grace, or
	// by the runtime's Close.
	if st := wait(t, ctr); st.ExitCode != runtime.ExitCodeKilled || st.Reason != runtime.ReasonError ||
		(st.Message != "stopped with grace 0s" && st.Message != "runtime closed") {
		t.Errorf("exit status after Close %+v: want the runtime's kill", st)
	}
	if p.alive() || p.err != nil {
		t.Errorf("helper after Close: alive %v, exit %v: want a clean exit", p.alive(), p.err)
	}
	if h.followers() != 0 {
		t.Errorf("%d handles still follow after Close", h.followers())
	}
	if err := h.Pull(ctx, "app"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Pull after Close: %v", err)
	}
	if _, err := h.Start(ctx, runtime.ContainerSpec{ID: "n", Image: "app", Log: logFile(dir, "n")}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Start after Close: %v", err)
	}
	if err := h.Close(cctx); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// Nothing is left for a new Helper to find.
	if ids, err := newTestHelper(t, state, marker).IDs(ctx); err != nil || len(ids) != 0 {
		t.Errorf("IDs after Close: %q, %v", ids, err)
	}
}

func TestHelperThatCannotStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "broken-helper")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'containerd is not answering' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := NewHelper(Config{Path: script, Socket: filepath.Join(t.TempDir(), "helper.sock")})
	defer h.Close(context.Background())
	err := h.Pull(context.Background(), "app")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "containerd is not answering") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Pull: %v: want ErrUnavailable with the helper's exit and stderr", err)
	}
	_, err = h.Start(context.Background(), runtime.ContainerSpec{ID: "a", Image: "app", Log: logFile(dir, "a")})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "containerd is not answering") {
		t.Fatalf("Start: %v", err)
	}
	// Without a marker, IDs needs the process too.
	if _, err := h.IDs(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("IDs: %v", err)
	}

	h = NewHelper(Config{Path: filepath.Join(t.TempDir(), "missing"), Socket: filepath.Join(t.TempDir(), "helper.sock")})
	defer h.Close(context.Background())
	if err := h.Pull(context.Background(), "app"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Pull with a missing executable: %v", err)
	}
}
