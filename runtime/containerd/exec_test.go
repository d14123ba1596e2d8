package containerd

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

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
