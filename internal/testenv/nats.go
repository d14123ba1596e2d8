package testenv

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// WaitSubscribed waits until nc has more than before subscriptions (one
// made by a server started on another goroutine) and the NATS server has
// them all.
func WaitSubscribed(t testing.TB, nc *nats.Conn, before int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); nc.NumSubscriptions() <= before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still %d subscriptions after 10s", nc.NumSubscriptions())
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}
