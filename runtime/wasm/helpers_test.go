package wasm_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/wasm"
)

// buildDir holds the Go guests built for wasip1, once per test binary;
// cacheDir is the compilation cache newRuntime shares between tests, so each
// Go guest is compiled once per test binary too (compiling is slow under
// -race).
var (
	buildDir  string
	cacheDir  string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasm-guests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = filepath.Join(dir, "build")
	cacheDir = filepath.Join(dir, "cache")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool returns the path of a tool on PATH; without it the test is
// skipped, except under CI=true where it fails.

// goGuests are the Go programs the tests run, by name.
var goGuests = map[string]string{
	"hello":  "../../examples/hello",
	"sensor": "../../examples/sensor",
	"job":    "../../examples/job",
	"guest":  "./testdata/guest",
}

// goGuest returns the module of a Go program built with GOOS=wasip1
// GOARCH=wasm. All of them are built in one go build, the first time one is
// asked for.
func goGuest(t testing.TB, name string) runtime.Module {
	t.Helper()
	goTool := testenv.Tool(t, "go")
	buildOnce.Do(func() {
		args := []string{"build", "-o", buildDir + string(filepath.Separator)}
		for _, pkg := range goGuests {
			args = append(args, pkg)
		}
		cmd := exec.Command(goTool, args...)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if _, ok := goGuests[name]; !ok {
		t.Fatalf("no Go guest %q", name)
	}
	return moduleAt(t, filepath.Join(buildDir, name))
}

// watModule returns a checked-in module built from testdata/NAME.wat.
func watModule(t testing.TB, name string) runtime.Module {
	t.Helper()
	return moduleAt(t, filepath.Join("testdata", name+".wasm"))
}

// tinyModule returns examples/tiny/tiny.wasm.
func tinyModule(t testing.TB) runtime.Module {
	t.Helper()
	return moduleAt(t, filepath.Join("..", "..", "examples", "tiny", "tiny.wasm"))
}

// moduleAt returns the module for a file, with its digest.
func moduleAt(t testing.TB, path string) runtime.Module {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.Module{Path: path, Digest: digest(b)}
}

// bytesModule writes b to a file and returns it as a module.
func bytesModule(t testing.TB, b []byte) runtime.Module {
	t.Helper()
	p := filepath.Join(t.TempDir(), "module.wasm")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return runtime.Module{Path: p, Digest: digest(b)}
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// newRuntime creates a Runtime closed with the test. Without a CacheDir of
// its own it shares the test binary's compilation cache.
func newRuntime(t testing.TB, cfg wasm.Config) *wasm.Runtime {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = cacheDir
	}
	r, err := wasm.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return r
}

// buffer is an io.Writer safe for the guest goroutine and the test to use.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// notify, when set, is closed at the first write that makes the buffer
	// contain want.
	want   string
	notify chan struct{}
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.b.Write(p)
	if b.notify != nil && strings.Contains(b.b.String(), b.want) {
		close(b.notify)
		b.notify = nil
	}
	return n, err
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor returns a channel closed once the buffer contains s.
func (b *buffer) waitFor(s string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan struct{})
	if strings.Contains(b.b.String(), s) {
		close(ch)
		return ch
	}
	b.want, b.notify = s, ch
	return ch
}

// hangGuard bounds every wait in these tests; it is no timing assertion,
// only a way to fail instead of hanging.
const hangGuard = 2 * time.Minute

// run starts spec and waits for the guest to exit.
func run(t testing.TB, r runtime.Runtime, spec runtime.ContainerSpec) runtime.ExitStatus {
	t.Helper()
	c := start(t, r, spec)
	return wait(t, c)
}

func start(t testing.TB, r runtime.Runtime, spec runtime.ContainerSpec) runtime.Container {
	t.Helper()
	if spec.ID == "" {
		spec.ID = t.Name()
	}
	c, err := r.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("start %s: %v", spec.ID, err)
	}
	return c
}

func wait(t testing.TB, c runtime.Container) runtime.ExitStatus {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(hangGuard):
		t.Fatalf("container %s did not exit", c.ID())
	}
	st, ok := c.Exit()
	if !ok {
		t.Fatalf("container %s: Done closed but Exit not ok", c.ID())
	}
	return st
}

// waitChan fails the test if ch is not closed in time.
func waitChan(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(hangGuard):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func wantExit(t testing.TB, st runtime.ExitStatus, code int32, reason string) {
	t.Helper()
	if st.ExitCode != code || st.Reason != reason {
		t.Fatalf("exit = %d %s (%q), want %d %s", st.ExitCode, st.Reason, st.Message, code, reason)
	}
	if st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
		t.Fatalf("exit times: started %v finished %v", st.StartedAt, st.FinishedAt)
	}
}

func env(kv ...string) []runtime.EnvVar {
	var e []runtime.EnvVar
	for i := 0; i+1 < len(kv); i += 2 {
		e = append(e, runtime.EnvVar{Name: kv[i], Value: kv[i+1]})
	}
	return e
}
