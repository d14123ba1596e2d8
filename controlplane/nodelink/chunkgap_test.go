package nodelink_test

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// TestCallGivesUpOnALostPart: an answer whose later parts do not come (a
// control plane that stopped while sending, a message lost) fails after
// ChunkGap, not at the request's deadline; a whole one is read.
func TestCallGivesUpOnALostPart(t *testing.T) {
	n := testenv.NATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	body := bytes.Repeat([]byte("x"), 10_000)
	var drop atomic.Bool
	drop.Store(true)
	sub, err := nc.Subscribe("api.test", func(m *nats.Msg) {
		msgs := nodelink.AnswerMsgs(m.Reply, nodelink.APIResponse{Code: 200, Body: body}, 4_096)
		if drop.Load() {
			msgs = msgs[:1]
		}
		for _, a := range msgs {
			nc.PublishMsg(a)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err = nodelink.Call(ctx, nc, "api.test", nodelink.APIRequest{Method: "GET", Path: "/api/v1/pods"})
	if took := time.Since(start); err == nil || !strings.Contains(err.Error(), "part 2 of 4 of the answer did not follow within 5s") || took > nodelink.ChunkGap+5*time.Second {
		t.Fatalf("a lost part: %v after %v", err, took)
	}
	drop.Store(false)
	r, err := nodelink.Call(ctx, nc, "api.test", nodelink.APIRequest{Method: "GET", Path: "/api/v1/pods"})
	if err != nil || r.Code != 200 || !bytes.Equal(r.Body, body) {
		t.Fatalf("a whole answer: %d, %d bytes, %v", r.Code, len(r.Body), err)
	}
}
