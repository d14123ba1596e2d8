package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wasmfleet/wasmfleet/controlplane/events"
	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

func lines(b *testenv.Buffer) []string {
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

// cluster is etcd, NATS and a running event publisher.
type cluster struct {
	url   string
	store *storage.Store
	pub   *events.Publisher
	js    jetstream.JetStream
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	return newClusterOn(t, testenv.NATS(t).URL())
}

// newClusterOn publishes to the NATS at url, connected with opts.
func newClusterOn(t *testing.T, url string, opts ...nats.Option) *cluster {
	t.Helper()
	_, c := testenv.Etcd(t)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	p, err := events.NewPublisher(events.Config{Etcd: c, JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("publisher: %v", err)
		}
	})
	waitFor(t, "publisher ready", p.Ready)
	return &cluster{url: url, store: storage.New(c), pub: p, js: js}
}

func (c *cluster) put(t *testing.T, resource, ns, name, value string) int64 {
	t.Helper()
	rev, err := c.store.Create(context.Background(), storage.Key(resource, ns, name), []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func (c *cluster) waitPublished(t *testing.T, rev int64) {
	t.Helper()
	waitFor(t, fmt.Sprint("revision ", rev, " published"), func() bool { return c.pub.PublishedRevision() >= rev })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// subscriber is run on its own goroutine.
type subscriber struct {
	stdout, stderr testenv.Buffer
	cancel         context.CancelFunc
	code           chan int
}

func startSubscriber(t *testing.T, args ...string) *subscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscriber{cancel: cancel, code: make(chan int, 1)}
	go func() { s.code <- run(ctx, args, &s.stdout, &s.stderr) }()
	t.Cleanup(func() { s.stop(t) })
	waitFor(t, "subscribed", func() bool { return strings.Contains(s.stderr.String(), "subscribed to ") })
	return s
}

func (s *subscriber) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case c := <-s.code:
		s.code <- c
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after cancel")
		return -1
	}
}

func (s *subscriber) waitLines(t *testing.T, n int) []string {
	t.Helper()
	waitFor(t, fmt.Sprint(n, " lines"), func() bool { return strings.Count(s.stdout.String(), "\n") >= n })
	return lines(&s.stdout)
}

func pod(ns, name, node string) string {
	return fmt.Sprintf(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":%q,"namespace":%q},"spec":{"nodeName":%q}}`, name, ns, node)
}

func TestNewEventsOnly(t *testing.T) {
	c := newCluster(t)
	before := c.put(t, "configmaps", "default", "old", `{"metadata":{}}`)
	c.waitPublished(t, before)
	s := startSubscriber(t, "--url", c.url)
	r1 := c.put(t, "pods", "default", "web.1", pod("default", "web.1", "n1.example.com"))
	r2 := c.put(t, "nodes", "", "n1.example.com", `{"metadata":{}}`)
	got := s.waitLines(t, 2)
	want := []string{
		fmt.Sprintf("ADDED %d wasmfleet.events.pods.default.web~1", r1),
		fmt.Sprintf("ADDED %d wasmfleet.events.nodes._.n1~example~com", r2),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("exit code %d, stderr %s", code, s.stderr.String())
	}
}

func TestNodeSubject(t *testing.T) {
	c := newCluster(t)
	s := startSubscriber(t, "--url", c.url, "--subject", subjects.NodeFilter("n1.example.com"))
	c.put(t, "pods", "default", "other", pod("default", "other", "n2"))
	r := c.put(t, "pods", "default", "mine", pod("default", "mine", "n1.example.com"))
	c.waitPublished(t, r)
	got := s.waitLines(t, 1)
	if want := fmt.Sprintf("ADDED %d wasmfleet.nodes.n1~example~com.pods.default.mine", r); len(got) != 1 || got[0] != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

// TestGapMarkers: a subscriber of some subjects still sees gap markers.
func TestGapMarkers(t *testing.T) {
	c := newCluster(t)
	s := startSubscriber(t, "--url", c.url, "--subject", subjects.ResourceFilter("pods"))
	// A marker as the publisher writes one after compacted revisions (it
	// then goes on after the marker's revision).
	before := c.put(t, "configmaps", "default", "skipped", `{"metadata":{}}`)
	c.waitPublished(t, before)
	gap := nats.NewMsg(subjects.GapSubject)
	gap.Header.Set(subjects.HeaderType, subjects.TypeGap)
	gap.Header.Set(subjects.HeaderRevision, fmt.Sprint(before))
	gap.Header.Set(subjects.HeaderGapFrom, fmt.Sprint(before-1))
	if _, err := c.js.PublishMsg(context.Background(), gap); err != nil {
		t.Fatal(err)
	}
	r := c.put(t, "pods", "default", "web", pod("default", "web", "n1"))
	got := s.waitLines(t, 2)
	want := []string{fmt.Sprintf("GAP %d wasmfleet.events._gap", before), fmt.Sprintf("ADDED %d wasmfleet.events.pods.default.web", r)}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("output %q, want %q", got, want)
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		{"wasmfleet.events.>", true}, {"wasmfleet.>", true}, {">", true}, {"wasmfleet.events.*", true},
		{"wasmfleet.events._gap", true}, {"*.*.*", true},
		{"wasmfleet.events.pods.>", false}, {"wasmfleet.events.*.>", false}, {"wasmfleet.nodes.>", false},
		{"wasmfleet.events", false}, {"wasmfleet.events._gap.x", false}, {"*.*", false},
	} {
		if got := subjectMatches(tc.filter, subjects.GapSubject); got != tc.want {
			t.Errorf("subjectMatches(%q, %q) = %v", tc.filter, subjects.GapSubject, got)
		}
	}
}

func TestFromRevision(t *testing.T) {
	c := newCluster(t)
	var revs []int64
	for i := range 40 {
		revs = append(revs, c.put(t, "configmaps", "default", fmt.Sprint("cm", i), `{"metadata":{}}`))
		c.put(t, "secrets", "default", fmt.Sprint("s", i), `{"metadata":{}}`) // filtered out below
	}
	c.waitPublished(t, revs[len(revs)-1]+1)

	for _, from := range []int{0, 17, 39} {
		t.Run(fmt.Sprint("from-", from), func(t *testing.T) {
			s := startSubscriber(t, "--url", c.url, "--subject", subjects.ResourceFilter("configmaps"), "--from-revision", fmt.Sprint(revs[from]))
			got := s.waitLines(t, len(revs)-from)
			var want []string
			for i := from; i < len(revs); i++ {
				want = append(want, fmt.Sprintf("ADDED %d wasmfleet.events.configmaps.default.cm%d", revs[i], i))
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
	// Between two revisions of the filter: starts at the next one.
	s := startSubscriber(t, "--url", c.url, "--subject", subjects.ResourceFilter("configmaps"), "--from-revision", fmt.Sprint(revs[38]-1))
	if got := s.waitLines(t, 2); !strings.HasPrefix(got[0], fmt.Sprint("ADDED ", revs[38], " ")) {
		t.Errorf("output %q", got)
	}
	// Beyond the end: new events only.
	s = startSubscriber(t, "--url", c.url, "--from-revision", fmt.Sprint(revs[39]+1000))
	r := c.put(t, "configmaps", "default", "late", `{"metadata":{}}`)
	if got := s.waitLines(t, 1); got[0] != fmt.Sprintf("ADDED %d wasmfleet.events.configmaps.default.late", r) {
		t.Errorf("output %q", got)
	}
}

// TestTLS: a NATS server that serves TLS and asks for a client
// certificate is reached with --tlsca, --tlscert and --tlskey.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	testenv.Certs(t, dir)
	ca, cert, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	url := testenv.TLSNATS(t, dir)
	c := newClusterOn(t, url, nats.RootCAs(ca), nats.ClientCert(cert, key))
	s := startSubscriber(t, "--url", url, "--tlsca", ca, "--tlscert", cert, "--tlskey", key)
	r := c.put(t, "configmaps", "default", "secure", `{"metadata":{}}`)
	if got := s.waitLines(t, 1); got[0] != fmt.Sprintf("ADDED %d wasmfleet.events.configmaps.default.secure", r) {
		t.Errorf("output %q", got)
	}
	var out, errb testenv.Buffer
	// Refused in the TLS handshake, or right after it (TLS 1.3): the words
	// vary with the timing.
	if code := run(context.Background(), []string{"--url", url, "--tlsca", ca}, &out, &errb); code != 1 ||
		!strings.HasPrefix(errb.String(), "nats-subscriber: connect: ") || !strings.Contains(errb.String(), "tls") {
		t.Errorf("without the client certificate: exit %d, %q", code, errb.String())
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"--bogus"}, {"--url", "nats://x", "extra"}, {"--url", "nats://x", "--from-revision", "-1"},
		{"--url", "nats://x", "--tlscert", "client.crt"}} {
		var out, errb testenv.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("run %q = %d, want 2", args, code)
		}
	}
	var out, errb testenv.Buffer
	if code := run(context.Background(), []string{"--url", "nats://127.0.0.1:1"}, &out, &errb); code != 1 {
		t.Errorf("unreachable server: exit %d, want 1", code)
	}
}
