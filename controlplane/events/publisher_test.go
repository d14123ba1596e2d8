package events

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
	"github.com/wasmfleet/wasmfleet/internal/embedded"
)

// TestKillAnywhereExactlyOnce kills publishers in the middle of their work —
// once between the events copy and the node copy of a pod's revision — with
// writes before, between and during the runs, and checks that the stream
// ends up holding every message exactly once, in order.
func TestKillAnywhereExactlyOnce(t *testing.T) {
	e := newEnv(t)
	w := newWriter(e.store)
	from := currentRev(t, e.store) + 1
	cfg := e.config(t)
	cfg.StartRevision = from
	cfg.AckTimeout = 5 * time.Second

	// 1: crash right after the events copy of a bound pod's revision.
	w.batch(t, "a", 24)
	exp := w.expected(from)
	k := -1
	for i, m := range exp {
		if strings.HasSuffix(m.id, ".node") {
			k = i // exp[k-1] is its events copy
			break
		}
	}
	if k < 1 {
		t.Fatal("no node copy in the first batch")
	}
	r := start(t, cfg, haltAfter(k))
	if err := r.wait(t); !errors.Is(err, errHalt) {
		t.Fatalf("run 1: %v, want halt", err)
	}
	e.waitStreamLast(t, uint64(k))
	msgs := e.messages(t)
	if last := msgs[len(msgs)-1]; last.id+".node" != exp[k].id {
		t.Fatalf("run 1 stopped after %s, want between %s and %s", last.id, exp[k-1].id, exp[k].id)
	}
	checkMessages(t, msgs, exp[:k])

	// 2: more writes, a restart that completes the revision and crashes
	// after 17 more messages.
	w.batch(t, "b", 24)
	exp = w.expected(from)
	r = start(t, cfg, haltAfter(17))
	if err := r.wait(t); !errors.Is(err, errHalt) {
		t.Fatalf("run 2: %v, want halt", err)
	}
	e.waitStreamLast(t, uint64(k+17))
	checkMessages(t, e.messages(t), exp[:k+17])

	// 3: concurrent writers while publishers crash after 1 message, then
	// after 40.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() { w.batch(t, fmt.Sprintf("c%d", g), 30) })
	}
	for _, n := range []int{1, 40} {
		r = start(t, cfg, haltAfter(n))
		if err := r.wait(t); !errors.Is(err, errHalt) {
			t.Fatalf("run 3: %v, want halt", err)
		}
	}
	wg.Wait()

	// 4: a publisher that runs to the end.
	exp = w.expected(from)
	r = start(t, cfg, nil)
	e.waitStreamLast(t, uint64(len(exp)))
	waitFor(t, "ready", r.p.Ready)
	if err := r.stop(t); err != nil {
		t.Fatalf("run 4: %v", err)
	}
	checkMessages(t, e.messages(t), exp)

	// 5: a clean restart repeats nothing.
	r = start(t, cfg, nil)
	waitFor(t, "ready", r.p.Ready)
	w.batch(t, "d", 6)
	exp = w.expected(from)
	e.waitStreamLast(t, uint64(len(exp)))
	last := w.writes[len(w.writes)-1].rev
	waitFor(t, "published revision", func() bool { return r.p.PublishedRevision() >= last })
	r.stop(t)
	checkMessages(t, e.messages(t), exp)
}

func TestSubjectsHeadersAndPayloads(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(t), nil)
	waitFor(t, "ready", r.p.Ready)
	w := newWriter(e.store)
	from := currentRev(t, e.store) + 1

	const node = "node-1.example.com"
	nodeRev := w.put(t, "nodes", "", node, objJSON("Node", "", node))
	w.put(t, "pods", "default", "web.1", podJSON("default", "web.1", ""))
	bindRev := w.put(t, "pods", "default", "web.1", podJSON("default", "web.1", node))
	w.put(t, "pods", "default", "web.1", podJSON("default", "web.1", node))
	delRev := w.del(t, "pods", "default", "web.1")
	w.put(t, "leases", "kube-node-lease", node, objJSON("Lease", "kube-node-lease", node))
	w.put(t, "secrets", "default", "db.creds", []byte(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db.creds","namespace":"default"},"data":{"password":"aHVudGVyMg=="},"stringData":{"user":"admin"},"type":"Opaque"}`))
	secDel := w.del(t, "secrets", "default", "db.creds")

	exp := w.expected(from)
	e.waitStreamLast(t, uint64(len(exp)))
	msgs := e.messages(t)
	checkMessages(t, msgs, exp)

	bySubjectID := map[string]got{}
	for _, m := range msgs {
		bySubjectID[m.subject+" "+m.id] = m
	}
	lookup := func(subject string, rev int64, node bool) got {
		t.Helper()
		id := fmt.Sprint(rev)
		if node {
			id += ".node"
		}
		m, ok := bySubjectID[subject+" "+id]
		if !ok {
			t.Fatalf("no message %s on %s", id, subject)
		}
		return m
	}

	// Cluster-scoped, dotted name.
	m := lookup("wasmfleet.events.nodes._.node-1~example~com", nodeRev, false)
	if m.key != "/registry/nodes/node-1.example.com" || m.typ != "ADDED" {
		t.Errorf("node message: %+v", m)
	}
	if rv := jsonField(t, m.data, "metadata", "resourceVersion"); rv != fmt.Sprint(nodeRev) {
		t.Errorf("node resourceVersion %v, want %d", rv, nodeRev)
	}
	// Binding: MODIFIED on the events subject, ADDED on the node's.
	if m := lookup("wasmfleet.events.pods.default.web~1", bindRev, false); m.typ != "MODIFIED" {
		t.Errorf("bind on events subject: %s", m.typ)
	}
	if m := lookup("wasmfleet.nodes.node-1~example~com.pods.default.web~1", bindRev, true); m.typ != "ADDED" {
		t.Errorf("bind on node subject: %s", m.typ)
	}
	// Deletion reaches the node, with the last value at the deletion's revision.
	m = lookup("wasmfleet.nodes.node-1~example~com.pods.default.web~1", delRev, true)
	if m.typ != "DELETED" || m.key != "/registry/pods/default/web.1" {
		t.Errorf("delete on node subject: %+v", m)
	}
	if rv := jsonField(t, m.data, "metadata", "resourceVersion"); rv != fmt.Sprint(delRev) {
		t.Errorf("deleted pod resourceVersion %v, want %d", rv, delRev)
	}
	if n := jsonField(t, m.data, "spec", "nodeName"); n != node {
		t.Errorf("deleted pod nodeName %v", n)
	}
	// Secrets: metadata only, on ADDED and DELETED.
	for _, m := range msgs {
		if !strings.HasPrefix(m.subject, "wasmfleet.events.secrets.") {
			continue
		}
		if m.subject != "wasmfleet.events.secrets.default.db~creds" {
			t.Errorf("secret subject %s", m.subject)
		}
		if strings.Contains(string(m.data), "aHVudGVyMg") || strings.Contains(string(m.data), "admin") ||
			jsonField(t, m.data, "data") != nil || jsonField(t, m.data, "stringData") != nil {
			t.Errorf("secret payload leaks data: %s", m.data)
		}
		if jsonField(t, m.data, "metadata", "name") != "db.creds" || jsonField(t, m.data, "type") != "Opaque" {
			t.Errorf("secret payload lost its metadata: %s", m.data)
		}
		if m.rev == fmt.Sprint(secDel) && jsonField(t, m.data, "metadata", "resourceVersion") != fmt.Sprint(secDel) {
			t.Errorf("deleted secret payload: %s", m.data)
		}
	}
	// Nothing but pods on node subjects.
	for _, m := range msgs {
		if strings.HasPrefix(m.subject, subjects.NodesPrefix) && !strings.Contains(m.subject, ".pods.") {
			t.Errorf("node subject %s", m.subject)
		}
	}
}

// TestTransactionWithSeveralKeys: one revision, several events, distinct
// message ids.
func TestTransactionWithSeveralKeys(t *testing.T) {
	e := newEnv(t)
	// The first publisher crashes inside the revision, before the node copy.
	r := start(t, e.config(t), haltAfter(2))
	waitFor(t, "ready", r.p.Ready)
	resp, err := e.etcd.Txn(context.Background()).Then(
		clientv3.OpPut(storage.Key("configmaps", "default", "a"), string(objJSON("ConfigMap", "default", "a"))),
		clientv3.OpPut(storage.Key("pods", "default", "p"), string(podJSON("default", "p", "n1"))),
	).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t); !errors.Is(err, errHalt) {
		t.Fatalf("run 1: %v, want halt", err)
	}
	rev := fmt.Sprint(resp.Header.Revision)
	exp := []want{
		{subject: "wasmfleet.events.configmaps.default.a", id: rev, typ: "ADDED", rev: rev},
		{subject: "wasmfleet.events.pods.default.p", id: rev + ".1", typ: "ADDED", rev: rev},
		{subject: "wasmfleet.nodes.n1.pods.default.p", id: rev + ".1.node", typ: "ADDED", rev: rev},
	}
	e.waitStreamLast(t, 2)
	checkMessages(t, e.messages(t), exp[:2])
	r = start(t, e.config(t), nil)
	e.waitStreamLast(t, 3)
	checkMessages(t, e.messages(t), exp)
}

func TestConcurrentWritersInRevisionOrder(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	r := start(t, cfg, nil)
	waitFor(t, "ready", r.p.Ready)
	w := newWriter(e.store)
	from := currentRev(t, e.store) + 1
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() { w.batch(t, fmt.Sprintf("w%d", g), 40) })
	}
	wg.Wait()
	exp := w.expected(from)
	e.waitStreamLast(t, uint64(len(exp)))
	checkMessages(t, e.messages(t), exp)
}

// TestCompactedGap: etcd compacted what the publisher needed; a gap marker
// says so and publishing goes on from the oldest revision etcd has.
func TestCompactedGap(t *testing.T) {
	e := newEnv(t)
	w := newWriter(e.store)
	from := currentRev(t, e.store) + 1
	w.batch(t, "a", 6)
	compactAt := currentRev(t, e.store) - 3
	if err := e.store.Compact(context.Background(), compactAt); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t)
	cfg.StartRevision = from
	r := start(t, cfg, nil)
	waitFor(t, "ready", r.p.Ready)
	exp := append([]want{{subject: subjects.GapSubject, id: fmt.Sprint(compactAt) + ".gap", typ: subjects.TypeGap, rev: fmt.Sprint(compactAt)}},
		w.expected(compactAt)...)
	e.waitStreamLast(t, uint64(len(exp)))
	msgs := e.messages(t)
	checkMessages(t, msgs, exp)
	m, err := e.stream(t).GetMsg(context.Background(), msgs[0].seq)
	if err != nil {
		t.Fatal(err)
	}
	if g := m.Header.Get(subjects.HeaderGapFrom); g != fmt.Sprint(from) {
		t.Errorf("gap from %s, want %d", g, from)
	}
}

// TestResumeFromCheckpointWhenStreamEmpty: when every message has aged out
// (here: purged), the checkpoint still tells where the publisher was.
func TestResumeFromCheckpointWhenStreamEmpty(t *testing.T) {
	e := newEnv(t)
	w := newWriter(e.store)
	cfg := e.config(t)
	r := start(t, cfg, nil)
	waitFor(t, "ready", r.p.Ready)
	from := currentRev(t, e.store) + 1
	w.batch(t, "a", 6)
	exp := w.expected(from)
	e.waitStreamLast(t, uint64(len(exp)))
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if err := e.stream(t).Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	next := currentRev(t, e.store) + 1
	w.batch(t, "b", 6) // written while no publisher runs
	r = start(t, cfg, nil)
	exp2 := w.expected(next)
	e.waitStreamLast(t, uint64(len(exp)+len(exp2)))
	checkMessages(t, e.messages(t), exp2)
}

// TestStreamAheadOfEtcd: etcd replaced by a fresh one (restored from an old
// backup): a gap marker, then the new history. The first publisher also
// catches up over writes outside /registry/, which only a progress
// notification can tell it about.
func TestStreamAheadOfEtcd(t *testing.T) {
	e := newEnv(t)
	w := newWriter(e.store)
	for i := range 100 {
		// Revisions 2..101 (outside the registry) keep the ids of the new
		// history below out of the old one's de-duplication window.
		if _, err := e.etcd.Put(context.Background(), fmt.Sprint("/elsewhere/", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.config(t)
	cfg.StartRevision = 1
	r := start(t, cfg, nil)
	waitFor(t, "ready", r.p.Ready)
	if got, want := r.p.PublishedRevision(), currentRev(t, e.store); got < want {
		t.Fatalf("ready at published revision %d, want %d", got, want)
	}
	for i := range 30 {
		w.put(t, "configmaps", "default", fmt.Sprint("cm", i), objJSON("ConfigMap", "default", "cm"))
	}
	e.waitStreamLast(t, 30)
	r.stop(t)

	e.newEtcd(t)
	w2 := newWriter(e.store)
	cur := currentRev(t, e.store)
	r = start(t, e.config(t), nil)
	waitFor(t, "ready", r.p.Ready)
	w2.put(t, "configmaps", "default", "fresh", objJSON("ConfigMap", "default", "fresh"))
	exp := append(w.expected(0), want{subject: subjects.GapSubject, id: fmt.Sprint(cur+1) + ".gap", typ: subjects.TypeGap, rev: fmt.Sprint(cur + 1)})
	exp = append(exp, w2.expected(0)...)
	e.waitStreamLast(t, uint64(len(exp)))
	msgs := e.messages(t)
	if len(msgs) != len(exp) {
		t.Fatalf("%d messages, want %d", len(msgs), len(exp))
	}
	for i := range exp {
		if msgs[i].String() != exp[i].String() {
			t.Errorf("message %d:\n got  %s\n want %s", i, msgs[i], exp[i])
		}
	}
	if r.p.PublishedRevision() > currentRev(t, e.store) {
		t.Errorf("published revision %d is ahead of etcd", r.p.PublishedRevision())
	}
}

// TestNATSRestart: NATS goes away while etcd keeps changing; the publisher
// retries and, once NATS is back, publishes everything exactly once.
func TestNATSRestart(t *testing.T) {
	dir := t.TempDir()
	ncfg := embedded.NATSConfig{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "js"), User: "admin", Password: "pw"}
	n, err := embedded.StartNATS(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	url := n.URL()
	ncfg.Listen = n.Server().Addr().String()
	t.Cleanup(func() { n.Close() })

	e := &env{url: url}
	e.newEtcd(t)
	e.nc, e.js = connect(t, url)
	cfg := e.config(t)
	cfg.AckTimeout = 500 * time.Millisecond
	r := start(t, cfg, nil)
	waitFor(t, "ready", r.p.Ready)
	w := newWriter(e.store)
	from := currentRev(t, e.store) + 1
	w.batch(t, "a", 6)
	e.waitStreamLast(t, uint64(len(w.expected(from))))

	n.Close()
	w.batch(t, "b", 12)
	time.Sleep(300 * time.Millisecond) // let the publisher fail and retry
	n, err = embedded.StartNATS(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	exp := w.expected(from)
	e.waitStreamLast(t, uint64(len(exp)))
	last := w.writes[len(w.writes)-1].rev
	waitFor(t, "published revision", func() bool { return r.p.PublishedRevision() >= last })
	r.stop(t)
	checkMessages(t, e.messages(t), exp)
}

func TestConfigValidate(t *testing.T) {
	e := newEnv(t)
	ok := Config{Etcd: e.etcd, JetStream: e.js}
	for name, c := range map[string]Config{
		"no etcd":      {JetStream: e.js},
		"no jetstream": {Etcd: e.etcd},
		"bad stream":   {Etcd: e.etcd, JetStream: e.js, Stream: "a.b"},
		"short maxage": {Etcd: e.etcd, JetStream: e.js, MaxAge: time.Minute},
		"neg bytes":    {Etcd: e.etcd, JetStream: e.js, MaxBytes: -1},
		"neg start":    {Etcd: e.etcd, JetStream: e.js, StartRevision: -1},
		"neg inflight": {Etcd: e.etcd, JetStream: e.js, MaxInFlight: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if _, err := NewPublisher(c); err == nil {
			t.Errorf("%s: NewPublisher accepted it", name)
		}
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(ok)
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.Stream != subjects.DefaultStream || p.cfg.MaxAge != DefaultMaxAge || p.cfg.MaxInFlight != DefaultMaxInFlight {
		t.Errorf("defaults: %+v", p.cfg)
	}
	if p.Ready() || p.PublishedRevision() != 0 {
		t.Error("a new publisher claims progress")
	}
}

// TestStreamConfigUpdated: an existing stream is brought to the configured
// limits.
func TestStreamConfigUpdated(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.MaxAge = time.Hour
	// Well under the test server's JetStream storage, which is 75% of the
	// disk space free when it starts: with 1 GiB here the stream could not
	// be created on a machine with little space left.
	cfg.MaxBytes = 64 << 20
	r := start(t, cfg, nil)
	waitFor(t, "ready", r.p.Ready)
	r.stop(t)
	cfg.MaxAge = 2 * time.Hour
	r = start(t, cfg, nil)
	waitFor(t, "ready", r.p.Ready)
	info, err := e.stream(t).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.MaxAge != 2*time.Hour || c.MaxBytes != 64<<20 || c.Duplicates != DuplicateWindow ||
		len(c.Subjects) != 2 || c.Subjects[0] != "wasmfleet.events.>" || c.Subjects[1] != "wasmfleet.nodes.>" {
		t.Errorf("stream config %+v", c)
	}
}

// TestOversizedObject: an object larger than the server's max_payload goes
// out without its payload instead of blocking the stream.
func TestOversizedObject(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(t), nil)
	waitFor(t, "ready", r.p.Ready)
	w := newWriter(e.store)
	from := currentRev(t, e.store) + 1
	big := fmt.Appendf(nil, `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"big"},"data":{"k":"%s"}}`,
		strings.Repeat("x", int(e.nc.MaxPayload())+1))
	w.put(t, "configmaps", "default", "big", big)
	w.put(t, "configmaps", "default", "small", objJSON("ConfigMap", "default", "small"))
	exp := w.expected(from)
	e.waitStreamLast(t, uint64(len(exp)))
	checkMessages(t, e.messages(t), exp)
	m, err := e.stream(t).GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Data) != 0 || m.Header.Get(subjects.HeaderPayloadOmitted) != "too-large" {
		t.Errorf("oversized message: %d bytes, headers %v", len(m.Data), m.Header)
	}
}

// TestRefusedInsideABatch: a batch asks for one acknowledgement, for its
// last message. A foreign message slipped into the stream in the middle of
// a batch makes the stream refuse the rest of it; that last message's
// refusal must resynchronize the publisher, which then publishes the rest
// once, after the foreign message.
func TestRefusedInsideABatch(t *testing.T) {
	e := newEnv(t)
	w := newWriter(e.store)
	from := currentRev(t, e.store) + 1
	// Written before the publisher starts: its first watch response
	// holds them all, one batch.
	w.batch(t, "a", 30)
	exp := w.expected(from)
	cfg := e.config(t)
	cfg.StartRevision = from
	const at = 5
	var mu sync.Mutex
	count := 0
	r := start(t, cfg, func(m *nats.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		if count++; count == at {
			if _, err := e.js.Publish(context.Background(), m.Subject, []byte("foreign")); err != nil {
				t.Errorf("foreign publish: %v", err)
			}
		}
		return nil
	})
	waitFor(t, "ready", r.p.Ready)
	e.waitStreamLast(t, uint64(len(exp)+1))
	r.stop(t)
	msgs := e.messages(t)
	if foreign := msgs[at-1]; foreign.id != "" || string(foreign.data) != "foreign" {
		t.Fatalf("message %d is %s, want the foreign one", at, foreign)
	}
	checkMessages(t, append(msgs[:at-1:at-1], msgs[at:]...), exp)
}

// TestLongNamePublished: an RBAC object's name needs only be a path
// segment, of any length. Its subject must still be one the NATS server
// takes: a control line (HPUB <subject> ...) longer than max_control_line
// (4096 bytes by default) makes the server close the connection, at every
// attempt, and the publisher would never get past the object.
func TestLongNamePublished(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(t), nil)
	waitFor(t, "ready", r.p.Ready)
	w := newWriter(e.store)
	from := currentRev(t, e.store) + 1
	long := strings.Repeat("reader ", 700) + "x" // 4901 bytes, 6301 encoded
	w.put(t, "clusterroles", "", long, objJSON("ClusterRole", "", long))
	w.put(t, "roles", "default", long, objJSON("Role", "default", long))
	w.put(t, "configmaps", "default", "after", objJSON("ConfigMap", "default", "after"))
	exp := w.expected(from)
	e.waitStreamLast(t, uint64(len(exp)))
	msgs := e.messages(t)
	checkMessages(t, msgs, exp)
	if want := storage.Key("clusterroles", "", long); msgs[0].key != want {
		t.Errorf("key header %.40q..., want %.40q...", msgs[0].key, want)
	}
	if got := jsonField(t, msgs[0].data, "metadata", "name"); got != long {
		t.Errorf("payload name %.40q...", got)
	}
}

// TestKeyBeyondJetStreamHeaderLimit: JetStream refuses a message whose
// headers exceed 64 KiB, whatever max_payload; a key that long (an RBAC
// name may be) goes out without Wasmfleet-Key, its payload naming the
// object, instead of being refused at every attempt.
func TestKeyBeyondJetStreamHeaderLimit(t *testing.T) {
	e := newEnv(t)
	if e.nc.MaxPayload() < 200_000 {
		t.Fatalf("max_payload %d: too small for this test", e.nc.MaxPayload())
	}
	r := start(t, e.config(t), nil)
	waitFor(t, "ready", r.p.Ready)
	w := newWriter(e.store)
	from := currentRev(t, e.store) + 1
	huge := strings.Repeat("h", 70_000)
	w.put(t, "clusterroles", "", huge, objJSON("ClusterRole", "", huge))
	w.put(t, "configmaps", "default", "after", objJSON("ConfigMap", "default", "after"))
	exp := w.expected(from)
	e.waitStreamLast(t, uint64(len(exp)))
	msgs := e.messages(t)
	checkMessages(t, msgs, exp)
	if msgs[0].key != "" {
		t.Errorf("key header of %d bytes", len(msgs[0].key))
	}
	if got := jsonField(t, msgs[0].data, "metadata", "name"); got != huge {
		t.Errorf("payload name %.40q...", got)
	}
	if msgs[1].key != storage.Key("configmaps", "default", "after") {
		t.Errorf("key header %q", msgs[1].key)
	}
}

// TestHeadersCountTowardMaxPayload: max_payload bounds headers and data
// together. An object whose payload fits but not with its headers (a long
// key, as an RBAC name may make it) must go out without its payload, and
// one whose key alone exceeds max_payload without the key header too;
// otherwise the client refuses the message at every attempt and the
// publisher never gets past it.
func TestHeadersCountTowardMaxPayload(t *testing.T) {
	const maxPayload = 64 << 10
	e := newEnvMaxPayload(t, maxPayload)
	r := start(t, e.config(t), nil)
	waitFor(t, "ready", r.p.Ready)
	w := newWriter(e.store)
	from := currentRev(t, e.store) + 1
	name := strings.Repeat("n", 3000)
	value := fmt.Appendf(nil, `{"kind":"ClusterRole","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":%q},"x":"%s"}`,
		name, strings.Repeat("x", maxPayload-1500-len(name)))
	if len(value) > maxPayload-1024 {
		t.Fatalf("value of %d bytes", len(value))
	}
	w.put(t, "clusterroles", "", name, value)
	huge := strings.Repeat("h", maxPayload+1)
	w.put(t, "clusterroles", "", huge, objJSON("ClusterRole", "", huge))
	w.put(t, "configmaps", "default", "after", objJSON("ConfigMap", "default", "after"))
	exp := w.expected(from)
	e.waitStreamLast(t, uint64(len(exp)))
	msgs := e.messages(t)
	checkMessages(t, msgs, exp)
	for i, m := range msgs[:2] {
		sm, err := e.stream(t).GetMsg(context.Background(), m.seq)
		if err != nil {
			t.Fatal(err)
		}
		if len(sm.Data) != 0 || sm.Header.Get(subjects.HeaderPayloadOmitted) != "too-large" {
			t.Errorf("message %d: %d bytes, headers %.200v", i, len(sm.Data), sm.Header)
		}
	}
	if want := storage.Key("clusterroles", "", name); msgs[0].key != want {
		t.Errorf("key header %.40q..., want %.40q...", msgs[0].key, want)
	}
	if msgs[1].key != "" {
		t.Errorf("key header of %d bytes on a message at max_payload", len(msgs[1].key))
	}
}

// TestKeyHeaderNeverNamesAnotherObject: nats.go trims a header value's
// trailing white space and turns CR and LF into spaces. RBAC names may end
// in a space: Wasmfleet-Key "/registry/clusterroles/reader" on the change
// of "reader " would name another object. Such a key is left out (the
// subject and the payload name the object); every other key is exact.
func TestKeyHeaderNeverNamesAnotherObject(t *testing.T) {
	e := newEnv(t)
	r := start(t, e.config(t), nil)
	waitFor(t, "ready", r.p.Ready)
	w := newWriter(e.store)
	from := currentRev(t, e.store) + 1
	names := []string{"reader", "reader ", "a\r\nb", "tab\t", " lead", "in side"}
	for _, n := range names {
		w.put(t, "clusterroles", "", n, objJSON("ClusterRole", "", n))
	}
	exp := w.expected(from)
	e.waitStreamLast(t, uint64(len(exp)))
	msgs := e.messages(t)
	checkMessages(t, msgs, exp)
	for i, n := range names {
		want := storage.Key("clusterroles", "", n)
		if n != "reader" && n != " lead" && n != "in side" {
			want = ""
		}
		if msgs[i].key != want {
			t.Errorf("name %q: key header %q, want %q", n, msgs[i].key, want)
		}
		if got := jsonField(t, msgs[i].data, "metadata", "name"); got != n {
			t.Errorf("name %q: payload name %q", n, got)
		}
	}
}
