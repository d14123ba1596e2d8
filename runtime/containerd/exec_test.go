package containerd

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/runtime"
)

// TestExec runs processes in a running container: their exit codes, their
// output (both streams), the container's environment, a deadline that
// kills one, and refusals once the container ended. The container's
// network namespace is its process's.
func TestExec(t *testing.T) {
	r := newRuntime(t)
	var out output
	c := start(t, r, runtime.ContainerSpec{
		Args: []string{"sleep"}, Env: []runtime.EnvVar{{Name: "GREETING", Value: "hello"}}, Stdout: &out,
	})
	out.waitFor(t, "ready")
	ex, ok := c.(runtime.Execer)
	if !ok {
		t.Fatal("a containerd container is not a runtime.Execer")
	}
	run := func(ctx context.Context, argv ...string) (runtime.ExecResult, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return ex.Exec(ctx, argv)
	}

	res, err := run(context.Background(), "/app", "out")
	if err != nil || res.ExitCode != 0 || !strings.Contains(string(res.Output), "hello stdout") || !strings.Contains(string(res.Output), "hello stderr") {
		t.Errorf("out: %+v (%q), %v", res, res.Output, err)
	}
	if res, err := run(context.Background(), "/app", "exit", "3"); err != nil || res.ExitCode != 3 {
		t.Errorf("exit 3: %+v, %v", res, err)
	}
	if res, err := run(context.Background(), "/app", "env"); err != nil || !strings.Contains(string(res.Output), "env=GREETING=hello") {
		t.Errorf("env: %+v (%q), %v", res, res.Output, err)
	}
	if _, err := run(context.Background(), "/no/such/program"); err == nil {
		t.Error("a missing program ran")
	}
	if _, err := run(context.Background()); err == nil {
		t.Error("an empty command ran")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	began := time.Now()
	if _, err := run(ctx, "/app", "sleep"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a process past its deadline: %v", err)
	}
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("the deadline ended the process after %v", d)
	}
	// The container itself runs on.
	if _, done := c.Exit(); done {
		t.Fatal("the container ended with its exec'd process")
	}

	ns, err := c.(runtime.Networked).NetNS(context.Background())
	if err != nil || !strings.HasSuffix(ns, "/ns/net") {
		t.Fatalf("network namespace %q, %v", ns, err)
	}
	if _, err := os.Stat(ns); err != nil {
		t.Error(err)
	}

	if err := c.Stop(0); err != nil {
		t.Fatal(err)
	}
	exit(t, c)
	if _, err := c.(runtime.Networked).NetNS(context.Background()); err == nil {
		t.Error("an ended container has a network namespace")
	}
	if _, err := run(context.Background(), "/app", "true"); err == nil {
		t.Error("exec in an ended container ran")
	}
}

func TestCappedOutput(t *testing.T) {
	o := &cappedOutput{limit: 5}
	for _, s := range []string{"abc", "defg", "h"} {
		if n, err := o.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := string(o.bytes()); got != "abcde" {
		t.Errorf("kept %q", got)
	}
}

// TestNetworkGroup: containers of one network group share a network
// namespace (its loopback up): one reaches the other on localhost, a
// container outside the group does not, one with HostNetwork is on the
// node's network; the namespace goes with the group's last container.
func TestNetworkGroup(t *testing.T) {
	r := newRuntime(t)
	var out output
	server := start(t, r, runtime.ContainerSpec{ID: "default/pod/server/0", Args: []string{"listen", "127.0.0.1:7000"}, NetworkGroup: "pod", Stdout: &out})
	out.waitFor(t, "ready")
	var out2, out3 output
	peer := start(t, r, runtime.ContainerSpec{ID: "default/pod/peer/0", Args: []string{"sleep"}, NetworkGroup: "pod", Stdout: &out2})
	other := start(t, r, runtime.ContainerSpec{ID: "default/other/main/0", Args: []string{"sleep"}, Stdout: &out3})
	out2.waitFor(t, "ready")
	out3.waitFor(t, "ready")
	dial := func(c runtime.Container) int32 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := c.(runtime.Execer).Exec(ctx, []string{"/app", "dial", "127.0.0.1:7000"})
		if err != nil {
			t.Fatal(err)
		}
		return res.ExitCode
	}
	if code := dial(peer); code != 0 {
		t.Errorf("a container of the group could not reach its peer on localhost (exit %d)", code)
	}
	if code := dial(other); code != 6 {
		t.Errorf("a container outside the group: exit %d, want 6 (refused)", code)
	}
	ns := r.netNSPath("pod")
	if !isNetNS(ns) {
		t.Fatalf("%s is not a network namespace", ns)
	}
	// HostNetwork puts a container in the node's network, group or not.
	addr := testenv.FreeAddr(t)
	var out4 output
	onHost := start(t, r, runtime.ContainerSpec{ID: "default/pod/host/0", Args: []string{"listen", addr}, HostNetwork: true, NetworkGroup: "pod", Stdout: &out4})
	out4.waitFor(t, "ready")
	if c, err := net.Dial("tcp", addr); err != nil {
		t.Errorf("a host network container from the node: %v", err)
	} else {
		c.Close()
	}
	if err := onHost.Stop(0); err != nil {
		t.Fatal(err)
	}
	exit(t, onHost)
	for _, c := range []runtime.Container{server, peer} {
		if err := c.Stop(0); err != nil {
			t.Fatal(err)
		}
		exit(t, c)
	}
	// The waiters delete the containers, the last one its namespace.
	deadline := time.Now().Add(time.Minute)
	for _, err := os.Stat(ns); err == nil; _, err = os.Stat(ns) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still there after the group's containers ended", ns)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNetworkPrunedAtStart: a group's namespace whose containers were
// removed behind the runtime's back (while no Runtime of the owner ran) is
// removed by the next Runtime of that owner.
func TestNetworkPrunedAtStart(t *testing.T) {
	r := newRuntime(t)
	var out output
	c := start(t, r, runtime.ContainerSpec{ID: "default/gone/main/0", Args: []string{"sleep"}, NetworkGroup: "gone", Stdout: &out})
	out.waitFor(t, "ready")
	ns := r.netNSPath("gone")
	if !isNetNS(ns) {
		t.Fatalf("%s is not a network namespace", ns)
	}
	// The runtime lets go (as an agent that stops), and the container is
	// deleted with containerd's own client.
	if err := r.Detach(); err != nil {
		t.Fatal(err)
	}
	cl, err := containerd.New(r.cfg.Address, containerd.WithDefaultNamespace(r.cfg.Namespace))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	cntr, err := cl.LoadContainer(ctx, c.(*container).cid)
	if err != nil {
		t.Fatal(err)
	}
	if err := deleteContainer(ctx, cntr); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ns); err != nil {
		t.Fatalf("the namespace went with a container deleted behind the runtime's back: %v", err)
	}
	again, err := New(context.Background(), r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(context.Background())
	if _, err := os.Stat(ns); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left after a new Runtime of the owner started: %v", ns, err)
	}
}
