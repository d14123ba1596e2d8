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
	"github.com/wasmfleet/wasmfleet/nodeagent/podlogs"
	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/containerd"
	"github.com/wasmfleet/wasmfleet/runtime/imagehelper"
)

const (
	testImage     = "wasmfleet.test/helper-app:v1"
	testNamespace = "wasmfleet-test"
)

// TestHelperRunsContainers builds this command and runs real containers
// through it, as the lean agent does (imagehelper.Helper): this command is
// also their logger, which writes their output to their log files; their
// exit statuses come back, Stop sends SIGTERM and waits, Close ends the
// helper and its containers.
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
	logDir := t.TempDir()
	start := func(args ...string) (runtime.Container, string) {
		t.Helper()
		name := strings.Join(args, "-")
		log := filepath.Join(logDir, name+".log")
		c, err := h.Start(ctx, runtime.ContainerSpec{ID: "default/" + name + "/app/0", Image: testImage, Args: args, Log: runtime.LogFile{Path: log}})
		if err != nil {
			t.Fatal(err)
		}
		return c, log
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
	output := func(log string) string {
		t.Helper()
		var b bytes.Buffer
		if err := podlogs.Read(ctx, log, podlogs.ReadOptions{Tail: -1}, &b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	waitOutput := func(log string, s string) {
		t.Helper()
		for !strings.Contains(output(log), s) {
			if ctx.Err() != nil {
				t.Fatalf("output %q never contained %q", output(log), s)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	c, log := start("out")
	if st := wait(c); st.ExitCode != 0 || st.Reason != runtime.ReasonCompleted {
		t.Errorf("out: exit status %+v", st)
	}
	// stdout and stderr are two pipes: their lines come in either order.
	waitOutput(log, "hello stdout\n")
	waitOutput(log, "hello stderr\n")
	if got := output(log); len(got) != len("hello stdout\nhello stderr\n") {
		t.Errorf("output %q", got)
	}
	if c, _ := start("exit", "3"); wait(c).ExitCode != 3 {
		t.Errorf("exit 3: exit status %+v", wait(c))
	}

	// Stop sends SIGTERM; the container's own exit code comes back.
	c, log = start("trap", "7")
	waitOutput(log, "ready")
	if err := c.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if st := wait(c); st.ExitCode != 7 || st.Reason != runtime.ReasonError {
		t.Errorf("trap 7 stopped: exit status %+v", st)
	}
	waitOutput(log, "got SIGTERM")

	// Close ends the helper, which kills what still runs and removes it
	// from containerd.
	c, log = start("sleep")
	waitOutput(log, "ready")
	cctx, ccancel := context.WithTimeout(ctx, time.Minute)
	defer ccancel()
	if err := h.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if st := wait(c); st.ExitCode != runtime.ExitCodeKilled || st.Reason != runtime.ReasonError {
		t.Errorf("sleep after Close: exit status %+v", st)
	}
}
