package nodeagent

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// TestAPIClientVersion1: against a control plane older than the node
// API's version 2, which answers any message as a version-1 request, the
// client goes on in version 1.
func TestAPIClientVersion1(t *testing.T) {
	const node = "edge-1"
	url := testenv.NATS(t).URL()
	old, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	var v2 atomic.Int32
	// As linkserver answered before version 2.
	sub, err := old.Subscribe(nodelink.APISubject(node), func(m *nats.Msg) {
		var req nodelink.APIRequest
		r := nodelink.APIResponse{Code: http.StatusBadRequest, ContentType: "application/json", Body: []byte(`{"kind":"Status","code":400}`)}
		if m.Header.Get(nodelink.HeaderAPIVersion) != "" {
			v2.Add(1)
		}
		if json.Unmarshal(m.Data, &req) == nil && req.Method == http.MethodPut {
			r = nodelink.APIResponse{Code: http.StatusOK, ContentType: "application/json", Body: append([]byte(req.Path+" "), req.Body...)}
		}
		b, _ := json.Marshal(r)
		m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := old.Flush(); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.CustomInboxPrefix(nodelink.InboxPrefix(node)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	api, err := NewAPIClient(nc, node)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 2 {
		code, body, err := api.Do(ctx, http.MethodPut, "/api/v1/nodes/edge-1", "application/json", []byte(`{"a":1}`))
		if err != nil || code != http.StatusOK || string(body) != `/api/v1/nodes/edge-1 {"a":1}` {
			t.Fatalf("call %d: %d %s %v", i, code, body, err)
		}
	}
	if n := v2.Load(); n != 1 {
		t.Errorf("%d requests in version 2, want 1 (the first)", n)
	}
}
