// Package testenv starts real dependencies for tests: embedded etcd and
// in-process NATS on random loopback ports, cleaned up with the test.
package testenv

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wasmfleet/wasmfleet/internal/embedded"
)

// FreeAddr returns a currently unused 127.0.0.1:port. The port is below
// the kernel's ephemeral range (net.ipv4.ip_local_port_range), where the
// source ports of outgoing connections come from: a port from that range,
// free when checked, was sometimes taken by another test's connection
// before the server under test bound it ("address already in use").
func FreeAddr(t testing.TB) string {
	t.Helper()
	lo := ephemeralLow()
	for range 100 {
		port := freePortFloor + rand.IntN(lo-freePortFloor)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// freePortFloor is the lowest port FreeAddr picks.
const freePortFloor = 10000

// ephemeralLow is the first port of the kernel's ephemeral range (32768,
// Linux's default, where it cannot be read).
func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > freePortFloor+1000 {
				lo = n
			}
		}
	}
	return lo
}

// Etcd starts an embedded etcd (fsync off) and returns it with an
// in-process client.
func Etcd(t testing.TB) (*embedded.Etcd, *clientv3.Client) {
	t.Helper()
	var e *embedded.Etcd
	var err error
	// A port FreeAddr found free can be taken by another test process
	// before etcd binds it: then try other ports.
	for range 5 {
		e, err = embedded.StartEtcd(context.Background(), embedded.EtcdConfig{
			Dir:           t.TempDir(),
			ClientListen:  FreeAddr(t),
			PeerListen:    FreeAddr(t),
			UnsafeNoFsync: true,
		})
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.Client()
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		e.Close()
	})
	return e, c
}

// NATS starts an in-process NATS server with JetStream on a random port.
func NATS(t testing.TB) *embedded.NATS {
	t.Helper()
	n, err := embedded.StartNATS(embedded.NATSConfig{
		Listen:   "127.0.0.1:0",
		StoreDir: t.TempDir(),
		User:     "admin",
		Password: "test-password",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// Tool returns the path of an external program the test needs (kubectl,
// wat2wasm, qemu-aarch64-static). Without it the test is skipped, except
// under CI=true where it fails: .ci/run installs every one of them.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found on PATH (required when CI=true): %v", name, err)
		}
		t.Skipf("%s not on PATH", name)
	}
	return p
}

// Kubectl returns the path of the kubectl binary (see Tool).
func Kubectl(t testing.TB) string { return Tool(t, "kubectl") }

// Wasmfleet builds cmd/wasmfleet (no race detector: it runs as a child
// process) into the test's temp dir and returns its path.
func Wasmfleet(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wasmfleet")
	cmd := exec.Command(Tool(t, "go"), "build", "-o", bin, "github.com/wasmfleet/wasmfleet/cmd/wasmfleet")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/wasmfleet: %v\n%s", err, out)
	}
	return bin
}

// Poll waits up to a minute for cond, failing the test with what its last
// attempt reported.
func Poll(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}
