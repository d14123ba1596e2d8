package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime/wasmhost"
)

// TestMain serves as the wasm guest host when an agent that a test runs
// in this process (run "agent") starts its executable, this test binary,
// as one.
func TestMain(m *testing.M) {
	if os.Getenv(wasmhost.ChildEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// stopGuestHost stops the wasm guest host an agent with data dir dir left
// running, and its guests.
func stopGuestHost(t *testing.T, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := wasmhost.NewHost(wasmhost.HostConfig{Config: wasmhost.Config{Dir: dir}}).Close(ctx); err != nil {
		t.Errorf("stop the wasm guest host of %s: %v", dir, err)
	}
}
