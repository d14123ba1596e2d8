package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/containerd"
	"github.com/wasmfleet/wasmfleet/runtime/imagehelper"
)

const (
	testImage     = "wasmfleet.test/helper-app:v1"
	testNamespace = "wasmfleet-test"
)

// TestHelperRunsContainers builds this command and runs real containers
// through it, as the lean agent does (imagehelper.Helper): their output
// and exit statuses come back, Stop sends SIGTERM and waits, Close ends
// the helper and its containers.
func TestHelperRunsContainers(t *testing.T) {
	addr := testenv.Containerd(t)
	bin := testenv.StaticGoBinary(t, "github.com/wasmfleet/wasmfleet/cmd/wasmfleet-containerd")
	app, err := os.ReadFile(testenv.StaticGoBinary(t, "../../runtime/containerd/testdata/app"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	importer, err := containerd.New(ctx, containerd.Config{Address: addr, Namespace: testNamespace, Snapshotter: os.Getenv("CONTAINERD_SNAPSHOTTER")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = importer.ImportImage(ctx, bytes.NewReader(testenv.OCIArchive(t, testenv.OCIImage{
		Name: testImage, Files: map[string]testenv.OCIFile{"/app": {Mode: 0o755, Data: app}},
		Entrypoint: []string{"/app"}, Cmd: []string{"true"}, Env: []string{"PATH=/"},
	})))
	importer.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}

	var owner [4]byte
	rand.Read(owner[:])
	h := imagehelper.NewHelper(imagehelper.Config{
		Path: bin,
		Args: []string{"--address", addr, "--namespace", testNamespace, "--snapshotter", os.Getenv("CONTAINERD_SNAPSHOTTER"),
			"--owner", "helper-test-" + hex.EncodeToString(owner[:])},
		Socket: filepath.Join(t.TempDir(), "helper.sock"),
	})
	defer h.Close(context.Background())

	if err := h.Pull(ctx, testImage); err != nil {
		t.Fatal(err)
	}
	start := func(out *testenv.Buffer, args ...string) runtime.Container {
		t.Helper()
		c, err := h.Start(ctx, runtime.ContainerSpec{ID: "default/" + strings.Join(args, "-") + "/app/0", Image: testImage, Args: args, Stdout: out, Stderr: out})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	wait := func(c runtime.Container) runtime.ExitStatus {
		t.Helper()
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatalf("container %s did not exit", c.ID())
		}
		st, _ := c.Exit()
		return st
	}
	waitOutput := func(out *testenv.Buffer, s string) {
		t.Helper()
		for !strings.Contains(out.String(), s) {
			if ctx.Err() != nil {
				t.Fatalf("output %q never contained %q", out.String(), s)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	var out testenv.Buffer
	if st := wait(start(&out, "out")); st.ExitCode != 0 || st.Reason != runtime.ReasonCompleted {
		t.Errorf("out: exit status %+v", st)
	}
	// stdout and stderr are two pipes: their lines come in either order.
	if got := out.String(); len(got) != len("hello stdout\nhello stderr\n") || !strings.Contains(got, "hello stdout\n") || !strings.Contains(got, "hello stderr\n") {
		t.Errorf("output %q", got)
	}
	if st := wait(start(&testenv.Buffer{}, "exit", "3")); st.ExitCode != 3 || st.Reason != runtime.ReasonError {
		t.Errorf("exit 3: exit status %+v", st)
	}

	// Stop sends SIGTERM; the container's own exit code comes back.
	var trap testenv.Buffer
	c := start(&trap, "trap", "7")
	waitOutput(&trap, "ready")
	if err := c.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if st := wait(c); st.ExitCode != 7 || st.Reason != runtime.ReasonError {
		t.Errorf("trap 7 stopped: exit status %+v", st)
	}
	waitOutput(&trap, "got SIGTERM")

	// Close ends the helper, which kills what still runs.
	var sleep testenv.Buffer
	c = start(&sleep, "sleep")
	waitOutput(&sleep, "ready")
	cctx, ccancel := context.WithTimeout(ctx, time.Minute)
	defer ccancel()
	if err := h.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if st := wait(c); st.ExitCode != runtime.ExitCodeKilled || st.Reason != runtime.ReasonError {
		t.Errorf("sleep after Close: exit status %+v", st)
	}
}
