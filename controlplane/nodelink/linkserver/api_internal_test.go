package linkserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	const node = "edge-1.site-a"
	cp, agent := natsPair(t, node, 0)

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
	if r := small.callV1(ctx, node, mustJSON(nodelink.APIRequest{Method: "POST", Path: "/api/v1/nodes", Body: bytes.Repeat([]byte("a"), 2<<10)})); r.Code != http.StatusRequestEntityTooLarge {
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

// natsPair starts a NATS server (maxPayload: its max_payload, 0 for the
// default) and returns a control plane's connection to it and one with
// node's inbox prefix.
func natsPair(t *testing.T, node string, maxPayload int32) (cp, agent *nats.Conn) {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true, MaxPayload: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	if cp, err = nats.Connect(ns.ClientURL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Close)
	if agent, err = nats.Connect(ns.ClientURL(), nats.CustomInboxPrefix(nodelink.InboxPrefix(node))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Close)
	return cp, agent
}

// TestServiceVersion2: requests and answers with raw bodies; an answer
// larger than the NATS max_payload arrives whole, in parts; one over
// nodelink.MaxAnswerBytes gets a Status asking for pages.
func TestServiceVersion2(t *testing.T) {
	const node = "edge-1"
	cp, agent := natsPair(t, node, 64<<10)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var got nodelink.APIRequest
	fake := func(ctx context.Context, u apiserver.User, method, path, ct string, body []byte) (int, string, []byte) {
		got = nodelink.APIRequest{Method: method, Path: path, ContentType: ct, Body: body}
		switch path {
		case "/big":
			return http.StatusOK, "application/json", big
		case "/huge":
			return http.StatusOK, "application/json", make([]byte, nodelink.MaxAnswerBytes+1)
		}
		return http.StatusCreated, "application/yaml", []byte("a: b\n")
	}
	svc, err := NewService(ServiceConfig{Conn: cp, API: fake})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subject := nodelink.APISubject(node)
	if _, err := nodelink.Call(ctx, agent, subject, nodelink.APIRequest{Method: "GET", Path: "/api"}); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("no control plane: %v, want %v", err, nats.ErrNoResponders)
	}
	subs := cp.NumSubscriptions()
	go svc.Run(ctx)
	testenv.WaitSubscribed(t, cp, subs)

	req := nodelink.APIRequest{Method: "POST", Path: "/api/v1/nodes?x=1", ContentType: "application/vnd.kubernetes.protobuf", Body: []byte{0, 1, 2, 0xff}}
	r, err := nodelink.Call(ctx, agent, subject, req)
	if err != nil || r.Code != http.StatusCreated || r.ContentType != "application/yaml" || string(r.Body) != "a: b\n" {
		t.Fatalf("answer %+v %v", r, err)
	}
	if got.Method != req.Method || got.Path != req.Path || got.ContentType != req.ContentType || !bytes.Equal(got.Body, req.Body) {
		t.Errorf("the API got %+v, want %+v", got, req)
	}
	r, err = nodelink.Call(ctx, agent, subject, nodelink.APIRequest{Method: "GET", Path: "/big"})
	if err != nil || r.Code != http.StatusOK || !bytes.Equal(r.Body, big) {
		t.Fatalf("1 MiB answer over a 64 KiB max_payload: %d, %d bytes, %v", r.Code, len(r.Body), err)
	}
	r, err = nodelink.Call(ctx, agent, subject, nodelink.APIRequest{Method: "GET", Path: "/huge"})
	if err != nil || r.Code != http.StatusInternalServerError || !bytes.Contains(r.Body, []byte("page lists with limit and continue")) {
		t.Errorf("answer over the limit: %d %.200s %v", r.Code, r.Body, err)
	}
	for name, req := range map[string]nodelink.APIRequest{
		"bad method":    {Method: "TRACE", Path: "/api"},
		"relative path": {Method: "GET", Path: "api/v1/pods"},
	} {
		if r, err := nodelink.Call(ctx, agent, subject, req); err != nil || r.Code != http.StatusBadRequest || !bytes.Contains(r.Body, []byte(`"kind":"Status"`)) {
			t.Errorf("%s: %d %s %v", name, r.Code, r.Body, err)
		}
	}
	// A version this control plane does not know.
	m := nodelink.RequestMsg(subject, agent.NewInbox(), nodelink.APIRequest{Method: "GET", Path: "/api"})
	m.Header.Set(nodelink.HeaderAPIVersion, "3")
	sub, err := agent.SubscribeSync(m.Reply)
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	a, err := sub.NextMsgWithContext(ctx)
	if err != nil || a.Header.Get(nodelink.HeaderCode) != "400" || !bytes.Contains(a.Data, []byte(`node API version \"3\" is not served`)) {
		t.Errorf("version 3: %v %s %v", a.Header, a.Data, err)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
