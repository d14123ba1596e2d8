package modules_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wasmfleet/wasmfleet/controlplane/modules"
)

// TestReadOnlyPermissions: a NATS user allowed only ReadSubjects (and its
// inbox) reads everything a node needs and can write nothing.
func TestReadOnlyPermissions(t *testing.T) {
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		Users: []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: "node", Password: "node", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: modules.ReadSubjects()},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	connect := func(user string, onErr func(error)) jetstream.JetStream {
		nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(user, user),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { onErr(err) }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	ctx := t.Context()
	admin, err := modules.New(ctx, connect("admin", func(err error) { t.Errorf("admin: %v", err) }), modules.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	mod := wasmModule(3<<20, 9) // enough chunks for flow control
	d, _, err := admin.Put(ctx, "app:v1", bytes.NewReader(mod))
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var violations []error
	node, err := modules.Bind(ctx, connect("node", func(err error) { mu.Lock(); violations = append(violations, err); mu.Unlock() }), modules.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := node.Resolve(ctx, "app:v1"); err != nil || got != d {
		t.Fatalf("node resolve: %s, %v", got, err)
	}
	if got, err := node.Resolve(ctx, "app@"+d); err != nil || got != d {
		t.Fatalf("node resolve digest: %s, %v", got, err)
	}
	if list, err := node.List(ctx); err != nil || len(list) != 1 || list[0].Digest != d {
		t.Fatalf("node list: %+v, %v", list, err)
	}
	for range 2 { // twice: consumers are cleaned up and recreated
		rc, size, err := node.Open(ctx, d)
		if err != nil {
			t.Fatalf("node open: %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, mod) || size != int64(len(mod)) {
			t.Fatalf("node read: %d bytes, %v", len(got), err)
		}
	}
	mu.Lock()
	if len(violations) > 0 {
		t.Fatalf("reading caused permission violations: %v", violations)
	}
	mu.Unlock()

	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, _, err := node.Put(wctx, "app:v2", bytes.NewReader(wasmModule(100, 1))); err == nil {
		t.Fatal("a read-only user pushed a module")
	}
	mu.Lock()
	defer mu.Unlock()
	denied := false
	for _, err := range violations {
		denied = denied || (errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation"))
	}
	if !denied {
		t.Fatalf("push failed without a permission violation: %v", violations)
	}
	if _, err := admin.Resolve(ctx, "app:v2"); !errors.Is(err, modules.ErrNotFound) {
		t.Fatalf("app:v2 after the denied push: %v", err)
	}
}
