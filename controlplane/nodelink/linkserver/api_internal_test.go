package linkserver

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

func TestSubjectNode(t *testing.T) {
	for _, tc := range []struct {
		subject, node string
		ok            bool
	}{
		{"wasmfleet.agent.edge-1.api", "edge-1", true},
		{"wasmfleet.agent.edge-1~site-a.api", "edge-1.site-a", true},
		{nodelink.APISubject("n.example.com"), "n.example.com", true},
		{"wasmfleet.agent.edge-1.status", "", false},
		{"wasmfleet.agent.edge-1.api.x", "", false},
		{"wasmfleet.other.edge-1.api", "", false},
		{"wasmfleet.agent.Edge%5F1.api", "", false}, // not a DNS subdomain
		{"wasmfleet.agent.bad%Z.api", "", false},
	} {
		node, ok := subjectNode(tc.subject)
		if node != tc.node || ok != tc.ok {
			t.Errorf("subjectNode(%q) = %q %v", tc.subject, node, ok)
		}
	}
}

// TestServiceEnvelope runs the service against a fake API on a plain NATS
// server: the user comes from the subject, malformed requests get a Status,
// concurrency is bounded and Run returns when its context ends.
func TestServiceEnvelope(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	cp, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	const node = "edge-1.site-a"
	agent, err := nats.Connect(ns.ClientURL(), nats.CustomInboxPrefix(nodelink.InboxPrefix(node)))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()

	var inFlight, maxInFlight atomic.Int32
	var mu sync.Mutex
	var users []apiserver.User
	fake := func(ctx context.Context, u apiserver.User, method, path, ct string, body []byte) (int, string, []byte) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		mu.Lock()
		users = append(users, u)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		return http.StatusOK, "application/json", []byte(`{"echo":` + string(mustJSON(map[string]string{"m": method, "p": path, "ct": ct, "b": string(body)})) + `}`)
	}
	svc, err := NewService(ServiceConfig{Conn: cp, API: fake, MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	subs := cp.NumSubscriptions()
	go func() { done <- svc.Run(ctx) }()
	testenv.WaitSubscribed(t, cp, subs)

	call := func(data []byte) nodelink.APIResponse {
		t.Helper()
		m, err := agent.Request(nodelink.APISubject(node), data, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r nodelink.APIResponse
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	req, _ := json.Marshal(nodelink.APIRequest{Method: "POST", Path: "/api/v1/nodes", ContentType: "application/yaml", Body: []byte("kind: Node\n")})
	if r := call(req); r.Code != http.StatusOK || !bytes.Contains(r.Body, []byte(`kind: Node\n`)) || r.ContentType != "application/json" {
		t.Errorf("echo: %d %s", r.Code, r.Body)
	}
	for name, tc := range map[string]struct {
		data []byte
		code int
	}{
		"not JSON":      {[]byte("{"), http.StatusBadRequest},
		"bad method":    {[]byte(`{"method":"TRACE","path":"/api"}`), http.StatusBadRequest},
		"relative path": {[]byte(`{"method":"GET","path":"api/v1/pods"}`), http.StatusBadRequest},
		"host path":     {[]byte(`{"method":"GET","path":"//evil/x"}`), http.StatusBadRequest},
	} {
		if r := call(tc.data); r.Code != tc.code {
			t.Errorf("%s: %d %s", name, r.Code, r.Body)
		} else if !bytes.Contains(r.Body, []byte(`"kind":"Status"`)) {
			t.Errorf("%s: not a Status: %s", name, r.Body)
		}
	}

	// Oversized requests (the NATS server's max_payload is below the
	// default limit, so call directly).
	small, _ := NewService(ServiceConfig{Conn: cp, API: fake, MaxRequestBytes: 1 << 10})
	if r := small.call(ctx, node, mustJSON(nodelink.APIRequest{Method: "POST", Path: "/api/v1/nodes", Body: bytes.Repeat([]byte("a"), 2<<10)})); r.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("huge request: %d %s", r.Code, r.Body)
	}

	// Concurrency is bounded.
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); call(req) }()
	}
	wg.Wait()
	if m := maxInFlight.Load(); m > 2 {
		t.Errorf("%d requests ran at once, limit 2", m)
	}
	mu.Lock()
	for _, u := range users {
		if u.Name != "system:node:"+node || len(u.Groups) == 0 || u.Groups[0] != apiserver.NodesGroup {
			t.Errorf("request ran as %+v", u)
		}
	}
	mu.Unlock()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
