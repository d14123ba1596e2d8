package containerd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/runtime"
)

// testImage is the reference of the image the tests import: testdata/app,
// built static, as /app, ENTRYPOINT ["/app"], CMD ["true"].
const (
	testImage     = "wasmfleet.test/app:v1"
	testNamespace = "wasmfleet-test"
)

var (
	archiveOnce sync.Once
	archive     []byte
)

// testArchive builds testdata/app and its OCI archive, once per test binary.
func testArchive(t testing.TB) []byte {
	t.Helper()
	archiveOnce.Do(func() {
		bin := testenv.StaticGoBinary(t, "./testdata/app")
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		archive = testenv.OCIArchive(t, testenv.OCIImage{
			Name:       testImage,
			Files:      map[string]testenv.OCIFile{"/app": {Mode: 0o755, Data: data}},
			Entrypoint: []string{"/app"},
			Cmd:        []string{"true"},
			Env:        []string{"PATH=/", "FROM_IMAGE=yes"},
		})
	})
	if archive == nil {
		t.Fatal("building the test image failed in another test")
	}
	return archive
}

// snapshotter is the snapshotter the tests use: CONTAINERD_SNAPSHOTTER, else
// containerd's default.
func snapshotter() string { return os.Getenv("CONTAINERD_SNAPSHOTTER") }

// newRuntime returns a Runtime on the test containerd in testNamespace with
// the test image imported, and a unique owner; it is closed with the test.
func newRuntime(t testing.TB) *Runtime {
	t.Helper()
	addr := testenv.Containerd(t)
	r, err := New(context.Background(), Config{
		Address:     addr,
		Namespace:   testNamespace,
		Snapshotter: snapshotter(),
		Owner:       "test-" + randHex(),
	})
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	names, err := r.ImportImage(ctx, bytes.NewReader(testArchive(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != testImage {
		t.Fatalf("imported %v, want [%s]", names, testImage)
	}
	return r
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// output is an io.Writer the tests read while the container writes.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor polls until the output contains s.
func (o *output) waitFor(t testing.TB, s string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(o.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q; it is %q", s, o.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// start starts spec (the test image unless spec.Image is set) and fails the
// test on error.
func start(t testing.TB, r *Runtime, spec runtime.ContainerSpec) runtime.Container {
	t.Helper()
	if spec.Image == "" {
		spec.Image = testImage
	}
	if spec.ID == "" {
		spec.ID = "default/" + t.Name() + "/app/0"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := r.Start(ctx, spec)
	if err != nil {
		t.Fatalf("start %v: %v", spec.Args, err)
	}
	return c
}

// exit waits (generously) for c to exit and returns its status.
func exit(t testing.TB, c runtime.Container) runtime.ExitStatus {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(2 * time.Minute):
		t.Fatalf("container %s did not exit", c.ID())
	}
	st, ok := c.Exit()
	if !ok {
		t.Fatalf("container %s: Done closed but Exit not ready", c.ID())
	}
	return st
}
