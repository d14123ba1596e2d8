package embedded

import (
	"context"
	"net"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestEtcdLogs: etcd's and its client's logs reach the Logger while etcd
// runs, and a clean Close logs no errors (etcd logs each listener's end as
// one).
func TestEtcdLogs(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	e, err := StartEtcd(context.Background(), EtcdConfig{Dir: t.TempDir(), ClientListen: freeAddr(t), PeerListen: freeAddr(t), UnsafeNoFsync: true, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.Client()
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	if _, err := c.Put(context.Background(), "k", "v"); err != nil {
		t.Error(err)
	}
	c.Close()
	if logs.Len() == 0 {
		t.Error("etcd logged nothing at info level while starting")
	}
	running := logs.Len()
	e.Close()
	for _, l := range logs.All()[running:] {
		if l.Level >= zapcore.WarnLevel {
			t.Errorf("logged while closing: %s %s %v", l.Level, l.Message, l.ContextMap())
		}
	}
}

// TestEtcdStoppedWhileStarting: ended while it starts (Ctrl-C right after
// `wasmfleet server`), etcd stops without logging its listeners' end as
// errors (the server shows etcd's errors only).
func TestEtcdStoppedWhileStarting(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e, err := StartEtcd(ctx, EtcdConfig{Dir: t.TempDir(), ClientListen: freeAddr(t), PeerListen: freeAddr(t), UnsafeNoFsync: true, Logger: zap.New(core)})
	if err == nil {
		e.Close()
		t.Fatal("StartEtcd with an ended context succeeded")
	}
	for _, l := range logs.All() {
		if l.Level >= zapcore.ErrorLevel {
			t.Errorf("logged while stopping: %s %s %v", l.Level, l.Message, l.ContextMap())
		}
	}
}
