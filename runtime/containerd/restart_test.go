package containerd

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/runtime"
)

// privateContainerd is a containerd daemon of the test's own, which it may
// kill and start again without disturbing the other tests' daemon.
type privateContainerd struct {
	t      *testing.T
	dir    string
	socket string
	cmd    *exec.Cmd
}

func startPrivateContainerd(t *testing.T) *privateContainerd {
	t.Helper()
	testenv.Containerd(t) // containerd and runc are installed
	dir, err := os.MkdirTemp("", "wfctd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &privateContainerd{t: t, dir: dir, socket: filepath.Join(dir, "c.sock")}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), p.socket, p.socket+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p.start()
	t.Cleanup(p.kill)
	return p
}

// start runs the daemon and waits until its socket answers.
func (p *privateContainerd) start() {
	p.t.Helper()
	os.Remove(p.socket)
	var log bytes.Buffer
	p.cmd = exec.Command(testenv.Tool(p.t, "containerd"), "--config", filepath.Join(p.dir, "config.toml"))
	p.cmd.Stdout, p.cmd.Stderr = &log, &log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", p.socket); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			p.kill()
			p.t.Fatalf("private containerd did not answer within 30s:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill kills the daemon (its shims, and so the containers, run on).
func (p *privateContainerd) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

// A containerd restart (an upgrade, a crash) is not the end of the
// containers: their shims run on, and the runtime follows them again once
// containerd is back.
func TestContainerdRestartKeepsContainers(t *testing.T) {
	ctd := startPrivateContainerd(t)
	ctx := context.Background()
	r, err := New(ctx, Config{Address: ctd.socket, Namespace: testNamespace, Snapshotter: snapshotter(), Owner: "test-" + randHex(),
		Logger: testenv.StaticGoBinary(t, "github.com/wasmfleet/wasmfleet/cmd/wasmfleet-logger")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := r.Close(cctx); err != nil {
			t.Error(err)
		}
	}()
	ictx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := r.ImportImage(ictx, bytes.NewReader(testArchive(t))); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "log")
	c := start(t, r, runtime.ContainerSpec{Args: []string{"tick", "0"}, Log: runtime.LogFile{Path: log}})
	waitLog(t, log, "tick 2\n")

	ctd.kill()
	time.Sleep(time.Second) // the waiter sees the connection break meanwhile
	if st, ok := c.Exit(); ok {
		t.Fatalf("the container ended with containerd: %+v", st)
	}
	waitLog(t, log, "tick 15\n") // it runs on, logged, with no containerd
	ctd.start()
	if err := c.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if st := exit(t, c); st.ExitCode != 2 || st.Reason != runtime.ReasonError {
		t.Errorf("stopped after containerd's restart: %+v; want exit code 2 (a Go PID 1 on SIGTERM)", st)
	}
}
