package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
	"github.com/wasmfleet/wasmfleet/internal/embedded"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// env is a real etcd and a real NATS server with JetStream. The publisher
// watches through a LocalWatcher, as in a server with the embedded etcd
// (controlplane/server tests the external etcd, over gRPC).
type env struct {
	etcd    *clientv3.Client
	watcher clientv3.Watcher
	store   *storage.Store
	url     string
	nc      *nats.Conn
	js      jetstream.JetStream
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{url: testenv.NATS(t).URL()}
	e.newEtcd(t)
	e.nc, e.js = connect(t, e.url)
	return e
}

// newEnvMaxPayload is newEnv with a NATS server whose max_payload is
// maxPayload, as an operator's external NATS may have.
func newEnvMaxPayload(t testing.TB, maxPayload int32) *env {
	t.Helper()
	n, err := embedded.StartNATS(embedded.NATSConfig{
		Listen: "127.0.0.1:0", StoreDir: t.TempDir(), User: "admin", Password: "pw", MaxPayload: maxPayload,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	e := &env{url: n.URL()}
	e.newEtcd(t)
	e.nc, e.js = connect(t, e.url)
	if got := e.nc.MaxPayload(); got != int64(maxPayload) {
		t.Fatalf("max_payload %d, want %d", got, maxPayload)
	}
	return e
}

// newEtcd points e at a new, empty etcd.
func (e *env) newEtcd(t testing.TB) {
	ee, c := testenv.Etcd(t)
	w := ee.LocalWatcher(c)
	t.Cleanup(func() { w.Close() })
	e.etcd, e.watcher, e.store = c, w, storage.NewWithKV(c, ee.KV())
}

func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// testLogger logs to stderr with -v; otherwise it keeps the log and prints
// it if the test fails.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	l := &testenv.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("publisher log:\n%s", l.String())
		}
	})
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (e *env) config(t testing.TB) Config {
	return Config{Etcd: e.etcd, Watcher: e.watcher, JetStream: e.js, Logger: testLogger(t)}
}

// running is a Publisher running on its own goroutine.
type running struct {
	p      *Publisher
	cancel context.CancelFunc
	done   chan error
}

func start(t testing.TB, cfg Config, hook func(*nats.Msg) error) *running {
	t.Helper()
	p, err := NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.beforePublish = hook
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and returns its result; it may be called again.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("publisher did not stop")
		return nil
	}
}

// wait waits for Run to return on its own (halted by the test hook).
func (r *running) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for stop
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("publisher did not halt")
		return nil
	}
}

// haltAfter returns a hook that lets n messages through and halts the
// publisher before the next, as a crash would.
func haltAfter(n int) func(*nats.Msg) error {
	var mu sync.Mutex
	count := 0
	return func(*nats.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		if count == n {
			return errHalt
		}
		count++
		return nil
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) stream(t testing.TB) jetstream.Stream {
	t.Helper()
	st, err := e.js.Stream(context.Background(), subjects.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (e *env) streamState(t testing.TB) jetstream.StreamState {
	t.Helper()
	info, err := e.stream(t).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

// waitStreamLast waits until the stream's last sequence is n.
func (e *env) waitStreamLast(t testing.TB, n uint64) {
	t.Helper()
	var last uint64
	waitFor(t, fmt.Sprintf("stream last sequence %d", n), func() bool {
		last = e.streamState(t).LastSeq
		if last > n {
			t.Fatalf("stream has %d messages, want %d", last, n)
		}
		return last == n
	})
}

// got is a message as read back from the stream.
type got struct {
	seq     uint64
	subject string
	id      string
	typ     string
	rev     string
	key     string
	data    []byte
}

func (g got) String() string { return fmt.Sprintf("%s %s %s %s", g.id, g.typ, g.rev, g.subject) }

func (e *env) messages(t testing.TB) []got {
	t.Helper()
	st := e.stream(t)
	state := e.streamState(t)
	var out []got
	for seq := state.FirstSeq; seq <= state.LastSeq && state.Msgs > 0; seq++ {
		m, err := st.GetMsg(context.Background(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got{
			seq: seq, subject: m.Subject, id: m.Header.Get(subjects.HeaderMsgID), typ: m.Header.Get(subjects.HeaderType),
			rev: m.Header.Get(subjects.HeaderRevision), key: m.Header.Get(subjects.HeaderKey), data: m.Data,
		})
	}
	return out
}

// want is an expected message.
type want struct {
	subject, id, typ, rev string
}

func (w want) String() string { return fmt.Sprintf("%s %s %s %s", w.id, w.typ, w.rev, w.subject) }

// checkMessages asserts the stream holds exactly want, in order, and that
// positions strictly increase.
func checkMessages(t testing.TB, gotMsgs []got, wants []want) {
	t.Helper()
	var prev position
	seen := map[string]bool{}
	for i, g := range gotMsgs {
		pos, err := parseMsgID(g.id)
		if err != nil {
			t.Fatalf("message %d: %v", g.seq, err)
		}
		if i > 0 && !prev.less(pos) {
			t.Errorf("message %d (%s) does not come after %s", g.seq, g.id, prev.msgID())
		}
		if seen[g.id] {
			t.Errorf("message id %s twice", g.id)
		}
		seen[g.id] = true
		prev = pos
		if strconv.FormatInt(pos.rev, 10) != g.rev {
			t.Errorf("message %d: id %s but revision header %s", g.seq, g.id, g.rev)
		}
	}
	n := max(len(gotMsgs), len(wants))
	bad := 0
	for i := 0; i < n && bad < 10; i++ {
		var gs, ws string
		if i < len(gotMsgs) {
			gs = gotMsgs[i].String()
		}
		if i < len(wants) {
			ws = wants[i].String()
		}
		if gs != ws {
			t.Errorf("message %d:\n got  %s\n want %s", i, gs, ws)
			bad++
		}
	}
	if len(gotMsgs) != len(wants) {
		t.Errorf("stream has %d messages, want %d", len(gotMsgs), len(wants))
	}
}

// writer writes objects through storage.Store and records what the stream
// must then hold.
type writer struct {
	s      *storage.Store
	mu     sync.Mutex
	writes []write
	rev    map[string]int64  // key → current mod revision
	node   map[string]string // key → spec.nodeName of the current value
}

type write struct {
	rev                 int64
	idx                 int // index within the revision
	typ                 storage.EventType
	resource, ns, name  string
	node, prevNode, key string
}

func newWriter(s *storage.Store) *writer {
	return &writer{s: s, rev: map[string]int64{}, node: map[string]string{}}
}

func podJSON(ns, name, node string) []byte {
	spec := "{}"
	if node != "" {
		spec = fmt.Sprintf(`{"nodeName":%q}`, node)
	}
	return fmt.Appendf(nil, `{"kind":"Pod","apiVersion":"v1","metadata":{"name":%q,"namespace":%q},"spec":%s}`, name, ns, spec)
}

func objJSON(kind, ns, name string) []byte {
	if ns == "" {
		return fmt.Appendf(nil, `{"kind":%q,"apiVersion":"v1","metadata":{"name":%q}}`, kind, name)
	}
	return fmt.Appendf(nil, `{"kind":%q,"apiVersion":"v1","metadata":{"name":%q,"namespace":%q}}`, kind, name, ns)
}

func (w *writer) put(t testing.TB, resource, ns, name string, value []byte) int64 {
	t.Helper()
	key := storage.Key(resource, ns, name)
	node := ""
	if resource == "pods" {
		node = nodeName(value)
	}
	w.mu.Lock()
	cur, exists := w.rev[key]
	w.mu.Unlock()
	var rev int64
	var err error
	typ := storage.Added
	if exists {
		typ = storage.Modified
		rev, err = w.s.Update(context.Background(), key, value, cur, 0)
	} else {
		rev, err = w.s.Create(context.Background(), key, value)
	}
	if err != nil {
		t.Errorf("write %s: %v", key, err)
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, write{rev: rev, typ: typ, resource: resource, ns: ns, name: name, node: node, prevNode: w.node[key], key: key})
	w.rev[key] = rev
	w.node[key] = node
	return rev
}

func (w *writer) del(t testing.TB, resource, ns, name string) int64 {
	t.Helper()
	key := storage.Key(resource, ns, name)
	rev, err := w.s.Delete(context.Background(), key, 0)
	if err != nil {
		t.Errorf("delete %s: %v", key, err)
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, write{rev: rev, typ: storage.Deleted, resource: resource, ns: ns, name: name, node: w.node[key], prevNode: w.node[key], key: key})
	delete(w.rev, key)
	delete(w.node, key)
	return rev
}

// batch writes a mix of every case: namespaced and cluster-scoped objects,
// dotted names, pods unbound, created bound, bound later, updated and
// deleted, secrets.
func (w *writer) batch(t testing.TB, tag string, n int) {
	t.Helper()
	for i := range n {
		name := fmt.Sprintf("%s.%d", tag, i)
		switch i % 6 {
		case 0: // pod created bound, then updated
			w.put(t, "pods", "default", name, podJSON("default", name, "node-1.example.com"))
			w.put(t, "pods", "default", name, podJSON("default", name, "node-1.example.com"))
		case 1: // pod created unbound, then bound
			w.put(t, "pods", "team-a", name, podJSON("team-a", name, ""))
			w.put(t, "pods", "team-a", name, podJSON("team-a", name, "node-2"))
		case 2: // bound pod deleted
			w.put(t, "pods", "default", name, podJSON("default", name, "node-2"))
			w.del(t, "pods", "default", name)
		case 3:
			w.put(t, "nodes", "", "node-"+name, objJSON("Node", "", "node-"+name))
		case 4:
			w.put(t, "secrets", "default", name, []byte(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","namespace":"default"},"data":{"k":"c2VjcmV0"}}`))
		case 5: // unbound pod deleted
			w.put(t, "pods", "default", name, podJSON("default", name, ""))
			w.del(t, "pods", "default", name)
		}
	}
}

// expected lists the messages of the writes at or after revision from.
func (w *writer) expected(from int64) []want {
	w.mu.Lock()
	ws := slices.Clone(w.writes)
	w.mu.Unlock()
	slices.SortStableFunc(ws, func(a, b write) int {
		if a.rev != b.rev {
			return int(a.rev - b.rev)
		}
		return a.idx - b.idx
	})
	var out []want
	for _, x := range ws {
		if x.rev < from {
			continue
		}
		id := strconv.FormatInt(x.rev, 10)
		if x.idx > 0 {
			id += "." + strconv.Itoa(x.idx)
		}
		rev := strconv.FormatInt(x.rev, 10)
		out = append(out, want{subject: subjects.ObjectSubject(x.resource, x.ns, x.name), id: id, typ: string(x.typ), rev: rev})
		if x.resource == "pods" && x.node != "" {
			typ := x.typ
			if typ == storage.Modified && x.prevNode != x.node {
				typ = storage.Added
			}
			out = append(out, want{subject: subjects.NodePodSubject(x.node, x.ns, x.name), id: id + ".node", typ: string(typ), rev: rev})
		}
	}
	return out
}

func currentRev(t testing.TB, s *storage.Store) int64 {
	t.Helper()
	rev, err := s.CurrentRev(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func jsonField(t testing.TB, data []byte, path ...string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("payload %q: %v", data, err)
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}
