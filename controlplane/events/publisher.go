package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// Config configures a Publisher. Zero values of optional fields mean their
// defaults.
type Config struct {
	// Etcd is the client whose /registry/ prefix is watched. Required; the
	// caller keeps ownership.
	Etcd *clientv3.Client
	// Watcher, when set, watches instead of Etcd's own Watcher (for
	// example one that calls an embedded etcd in process); the caller
	// keeps ownership.
	Watcher clientv3.Watcher
	// JetStream publishes to the stream. Required; the caller keeps
	// ownership of its connection, which should reconnect forever
	// (nats.MaxReconnects(-1)): the publisher retries while it is down.
	// Creating it with jetstream.WithPublishAsyncTimeout lets the client
	// forget acknowledgements that never come (the publisher gives up on
	// them after AckTimeout either way).
	JetStream jetstream.JetStream
	// Stream is the stream name (default subjects.DefaultStream).
	Stream string
	// MaxAge is how long the stream keeps messages (default DefaultMaxAge;
	// at least DuplicateWindow).
	MaxAge time.Duration
	// MaxBytes caps the stream's size; the oldest messages go first (0: no
	// limit).
	MaxBytes int64
	// Replicas is the stream's replication factor on a NATS cluster
	// (default 1).
	Replicas int
	// StartRevision is the first revision published when the stream and
	// the checkpoint hold no position (0: etcd's current revision + 1, that
	// is, only changes from now on).
	StartRevision int64
	// MaxInFlight bounds the publishes awaiting their acknowledgement
	// (default 256; 1 publishes synchronously). Keep it below the
	// JetStream context's async max pending (nats.go default 4000).
	MaxInFlight int
	// AckTimeout is how long a publish may wait for its acknowledgement
	// before the publisher resynchronizes with the stream (default 10s).
	AckTimeout time.Duration
	// Logger receives the publisher's logs; nil discards them.
	Logger *slog.Logger
	// Metrics, when set, receives wasmfleet_events_publish_duration_seconds
	// (publish → JetStream acknowledgement) and
	// wasmfleet_events_published_revision.
	Metrics prometheus.Registerer
}

// Defaults.
const (
	DefaultMaxInFlight = 256
	DefaultAckTimeout  = 10 * time.Second
)

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Etcd == nil:
		return errors.New("events: Config.Etcd is required")
	case c.JetStream == nil:
		return errors.New("events: Config.JetStream is required")
	case c.Stream != "" && strings.ContainsAny(c.Stream, ".*> \t\r\n/\\"):
		return fmt.Errorf("events: invalid stream name %q", c.Stream)
	case c.MaxAge < 0 || c.MaxAge > 0 && c.MaxAge < DuplicateWindow:
		return fmt.Errorf("events: MaxAge %v must be at least the duplicate window %v", c.MaxAge, DuplicateWindow)
	case c.MaxBytes < 0:
		return fmt.Errorf("events: negative MaxBytes %d", c.MaxBytes)
	case c.Replicas < 0:
		return fmt.Errorf("events: negative Replicas %d", c.Replicas)
	case c.StartRevision < 0:
		return fmt.Errorf("events: negative StartRevision %d", c.StartRevision)
	case c.MaxInFlight < 0:
		return fmt.Errorf("events: negative MaxInFlight %d", c.MaxInFlight)
	case c.AckTimeout < 0:
		return fmt.Errorf("events: negative AckTimeout %v", c.AckTimeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = subjects.DefaultStream
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Watcher == nil {
		c.Watcher = c.Etcd.Watcher
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Publisher follows the etcd watch of /registry/ and publishes every change
// to the events stream exactly once, in revision order (see the package
// comment). Run it once; Ready and PublishedRevision are safe to call from
// any goroutine at any time.
type Publisher struct {
	cfg   Config
	log   *slog.Logger
	store *storage.Store

	ready     atomic.Bool
	published atomic.Int64

	ackLatency prometheus.Histogram // nil without Config.Metrics

	// beforePublish, when set (by tests), is called before each publish;
	// an error stops Run at once, as a crash would.
	beforePublish func(*nats.Msg) error
}

// NewPublisher validates cfg and returns a Publisher; it does no I/O.
func NewPublisher(cfg Config) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Publisher{cfg: cfg, log: cfg.Logger, store: storage.New(cfg.Etcd)}
	if cfg.Metrics != nil {
		p.ackLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wasmfleet_events_publish_duration_seconds",
			Help:    "Time from publishing an event to its JetStream acknowledgement.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1},
		})
		rev := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wasmfleet_events_published_revision",
			Help: "Every etcd revision up to this one is in the events stream.",
		}, func() float64 { return float64(p.published.Load()) })
		if err := errors.Join(cfg.Metrics.Register(p.ackLatency), cfg.Metrics.Register(rev)); err != nil {
			return nil, fmt.Errorf("event publisher metrics: %w", err)
		}
	}
	return p, nil
}

// Ready reports that the stream exists and the publisher has, at least
// once, published every change up to the etcd revision it saw on start.
func (p *Publisher) Ready() bool { return p.ready.Load() }

// PublishedRevision returns a revision R such that every change with a
// revision <= R is in the stream (0 until the publisher knows). etcd must
// not be compacted past it: Compact(R) keeps revision R, which is all a
// restarted publisher needs, so the compactor may compact at
// PublishedRevision() and never further. It never decreases except when
// etcd's history is found to have been replaced (restored from a backup).
func (p *Publisher) PublishedRevision() int64 { return p.published.Load() }

func (p *Publisher) advancePublished(rev int64) {
	for {
		cur := p.published.Load()
		if rev <= cur || p.published.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// errHalt stops Run without a retry; only the test hook returns it.
var errHalt = errors.New("events: publisher halted")

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Run publishes until ctx ends, then returns nil. Failures of NATS or etcd
// are logged and retried with back-off; after each one the publisher
// resynchronizes with the stream, so nothing is skipped or repeated.
func (p *Publisher) Run(ctx context.Context) error {
	delay := minBackoff
	for {
		progressed, err := p.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errHalt) {
			return err
		}
		if progressed {
			delay = minBackoff
		}
		wait := delay/2 + rand.N(delay/2+1)
		p.log.Warn("event publisher: resynchronizing with the stream", "err", err, "retryIn", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, maxBackoff)
	}
}

// runOnce ensures the stream, finds where the stream ends and follows etcd
// from there until an error.
func (p *Publisher) runOnce(ctx context.Context) (progressed bool, err error) {
	js := p.cfg.JetStream
	sc := StreamConfig(p.cfg.Stream, p.cfg.MaxAge, p.cfg.MaxBytes, p.cfg.Replicas)
	st, err := js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		return false, fmt.Errorf("create or update stream %s: %w", p.cfg.Stream, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      checkpointBucket(p.cfg.Stream),
		Description: "wasmfleet: position of the events publisher",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    p.cfg.Replicas,
	})
	if err != nil {
		// The checkpoint only matters once the whole stream has aged out;
		// publishing goes on without it.
		p.log.Warn("event publisher: no checkpoint bucket", "err", err)
		kv = nil
	}
	f := &follower{p: p, js: js, st: st, kv: kv}
	if err := f.resume(ctx); err != nil {
		return false, err
	}
	err = f.follow(ctx)
	if !errors.Is(err, errHalt) {
		// The acks already on their way count: stopped right after a
		// publish, the checkpoint must not stay behind the stream, which
		// may be purged before the next start.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(p.cfg.AckTimeout, 5*time.Second))
		for f.head < len(f.queue) && f.queue[f.head].fut != nil && f.awaitHead(cctx) == nil {
		}
		f.saveCheckpoint(cctx)
		cancel()
	}
	return f.progressed, err
}

// follower is the state of one resynchronized run; it lives on Run's
// goroutine only.
type follower struct {
	p  *Publisher
	js jetstream.JetStream
	st jetstream.Stream
	kv jetstream.KeyValue

	created time.Time // the stream's creation time (checkpoint validity)
	target  int64     // etcd revision at resume: Ready once published

	startRev int64   // first revision to watch
	gap      *outMsg // marker to publish before watching, if any

	sent     position // last message sent (or found in the stream)
	seq      uint64   // stream sequence of sent
	complete int64    // every revision <= complete has been enqueued

	curRev int64 // revision of the last event seen and its index in it
	curIdx int

	queue    []pending // queue[head:]: sent messages awaiting acks, and marks, in order
	head     int
	inflight int    // messages sent and not acknowledged
	unacked  int    // of those, sent since the last that asks for an ack
	lastID   string // Nats-Msg-Id of the last message sent, "" before the first

	// batch holds the messages of the watch responses at hand, and
	// batchMark the revision they complete (see send).
	batch     []outMsg
	batchMark int64

	acked      position
	ackedSeq   uint64
	dirty      bool // acked moved since the last checkpoint
	progressed bool
}

// pending is a sent message awaiting its ack, with the n-1 messages sent
// before it without a reply subject, or, with fut nil, a mark: once
// everything before it is acked, revisions <= mark are in the stream.
type pending struct {
	fut      jetstream.PubAckFuture
	n        int
	pos      position
	seq      uint64
	sent     time.Time
	deadline time.Time
	mark     int64
}

const maxScanBack = 1000

// fitPayload makes msg fit the server's max_payload (limit; <= 0: none),
// which bounds its headers and data together, and JetStream's bound on
// headers (maxHeaderBytes): a message that did not fit would be refused at
// every attempt, and the publisher would stop there. Only a long key
// (RBAC names may be any path segment, of any length) makes the headers
// large: Wasmfleet-Key is then left out (the payload still names the
// object). An object too large goes out without its payload, with
// Wasmfleet-Payload-Omitted, and if the headers are still too large,
// without Wasmfleet-Key as well.
func fitPayload(msg *nats.Msg, limit int64) {
	if headerSize(msg.Header) > maxHeaderBytes {
		msg.Header.Del(subjects.HeaderKey)
	}
	if limit <= 0 || int64(headerSize(msg.Header)+len(msg.Data)) <= limit {
		return
	}
	msg.Data = nil
	msg.Header.Set(subjects.HeaderPayloadOmitted, "too-large")
	if int64(headerSize(msg.Header)) > limit {
		msg.Header.Del(subjects.HeaderKey)
	}
}

// maxHeaderBytes is the largest header block a JetStream stream stores.
const maxHeaderBytes = math.MaxUint16

// headerSize is at least the size of h as nats.go encodes it, which counts
// toward max_payload: "NATS/1.0\r\n", "Key: value\r\n" per value, "\r\n".
func headerSize(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + len(": \r\n")
		}
	}
	return n
}

// resume finds the last message the publisher wrote (or the checkpoint, or
// the configured start) and sets where to continue.
func (f *follower) resume(ctx context.Context) error {
	p := f.p
	info, err := f.st.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s info: %w", p.cfg.Stream, err)
	}
	f.created = info.Created
	f.seq = info.State.LastSeq
	cur, err := p.store.CurrentRev(ctx)
	if err != nil {
		return err
	}
	f.target = cur

	last, found, err := f.lastInStream(ctx, info.State)
	if err != nil {
		return err
	}
	source := "stream"
	if !found {
		last, found = f.readCheckpoint(ctx, info)
		source = "checkpoint"
	}
	if !found {
		start := p.cfg.StartRevision
		if start <= 0 {
			start = cur + 1
		}
		last = position{rev: start - 1, slot: slotAll}
		source = "start"
	}
	next := last.rev
	if last.slot == slotAll {
		next++
	}
	// A StartRevision in the future just waits for it; a stream holding a
	// revision etcd has not reached means etcd's history was replaced.
	if source != "start" && last.rev > cur {
		p.log.Error("event publisher: the stream is ahead of etcd; etcd's history was replaced (restored from a backup?); continuing from etcd's current revision after a gap marker",
			"stream", p.cfg.Stream, "streamRevision", last.rev, "etcdRevision", cur)
		g := gapMessage(cur+1, next)
		f.gap = &g
		last = position{rev: cur, slot: slotAll}
		next = cur + 1
		p.published.Store(cur)
	}
	f.sent, f.acked, f.ackedSeq = last, last, f.seq
	f.startRev = next
	f.complete = next - 1
	f.curRev, f.curIdx = 0, 0
	p.advancePublished(next - 1)
	if next > cur {
		p.ready.Store(true)
	}
	p.log.Info("event publisher: resuming", "stream", p.cfg.Stream, "from", source,
		"last", last, "watchFrom", next, "streamSeq", f.seq, "etcdRevision", cur)
	return nil
}

// lastInStream returns the position of the stream's last publisher message.
func (f *follower) lastInStream(ctx context.Context, st jetstream.StreamState) (position, bool, error) {
	if st.Msgs == 0 {
		return position{}, false, nil
	}
	for seq := st.LastSeq; seq >= st.FirstSeq && seq > 0 && st.LastSeq-seq < maxScanBack; seq-- {
		m, err := f.st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return position{}, false, fmt.Errorf("stream %s: read message %d: %w", f.p.cfg.Stream, seq, err)
		}
		if pos, ok := positionOf(m.Header); ok {
			return pos, true, nil
		}
	}
	return position{}, false, fmt.Errorf("stream %s: none of its last %d messages was written by the event publisher; only the publisher may write to %v",
		f.p.cfg.Stream, maxScanBack, streamSubjects)
}

func (f *follower) readCheckpoint(ctx context.Context, info *jetstream.StreamInfo) (position, bool) {
	if f.kv == nil {
		return position{}, false
	}
	e, err := f.kv.Get(ctx, checkpointKey)
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			f.p.log.Warn("event publisher: read checkpoint", "err", err)
		}
		return position{}, false
	}
	var cp checkpoint
	if err := json.Unmarshal(e.Value(), &cp); err != nil {
		f.p.log.Warn("event publisher: bad checkpoint", "err", err)
		return position{}, false
	}
	if !cp.StreamCreated.Equal(info.Created) || cp.Seq > info.State.LastSeq {
		f.p.log.Info("event publisher: ignoring the checkpoint of an earlier stream", "checkpointStreamCreated", cp.StreamCreated, "streamCreated", info.Created)
		return position{}, false
	}
	pos, err := parseMsgID(cp.MsgID)
	if err != nil {
		f.p.log.Warn("event publisher: bad checkpoint", "err", err)
		return position{}, false
	}
	return pos, true
}

func (f *follower) saveCheckpoint(ctx context.Context) {
	if f.kv == nil || !f.dirty {
		return
	}
	b, err := json.Marshal(checkpoint{StreamCreated: f.created, Seq: f.ackedSeq, MsgID: f.acked.msgID()})
	if err != nil {
		return
	}
	if _, err := f.kv.Put(ctx, checkpointKey, b); err != nil {
		f.p.log.Warn("event publisher: write checkpoint", "err", err)
		return
	}
	f.dirty = false
}

// compactedError reports that etcd no longer has the revisions to watch.
type compactedError struct{ rev int64 }

func (e *compactedError) Error() string {
	return fmt.Sprintf("etcd compacted up to revision %d", e.rev)
}

// follow publishes the pending gap marker, then watches etcd from startRev;
// when etcd has compacted what is needed it publishes a gap marker and goes
// on from the oldest revision etcd still has.
func (f *follower) follow(ctx context.Context) error {
	if f.gap != nil {
		if err := f.publish(ctx, *f.gap); err != nil {
			return err
		}
		f.gap = nil
	}
	start := f.startRev
	for {
		err := f.watch(ctx, start)
		var ce *compactedError
		if !errors.As(err, &ce) {
			return err
		}
		from := f.complete + 1
		f.p.log.Error("event publisher: etcd compacted revisions that were never published; publishing a gap marker, subscribers must relist",
			"missingFrom", from, "missingTo", ce.rev-1, "continueAt", ce.rev)
		if err := f.publish(ctx, gapMessage(ce.rev, from)); err != nil {
			return err
		}
		f.complete = ce.rev - 1
		start = ce.rev
	}
}

const (
	progressEvery     = 100 * time.Millisecond
	idleProgressEvery = 5 * time.Second
	checkpointEvery   = time.Second
)

// watch publishes the changes from revision start on until an error.
func (f *follower) watch(ctx context.Context, start int64) error {
	p := f.p
	// A stream of its own: progress requests then reach only this watch,
	// and other watchers on the client cannot delay it.
	wctx := metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx), "wasmfleet-watcher", "events-publisher")
	wctx, cancel := context.WithCancel(wctx)
	defer cancel()
	wch := p.cfg.Watcher.Watch(wctx, storage.Root, clientv3.WithPrefix(), clientv3.WithRev(start),
		clientv3.WithPrevKV(), clientv3.WithProgressNotify())

	progress := time.NewTicker(progressEvery)
	defer progress.Stop()
	checkpointT := time.NewTicker(checkpointEvery)
	defer checkpointT.Stop()
	ackTimer := time.NewTimer(time.Hour)
	defer ackTimer.Stop()
	var lastActivity, lastProgressReq time.Time

	for {
		var in <-chan clientv3.WatchResponse
		if f.inflight < p.cfg.MaxInFlight {
			in = wch
		}
		var okc <-chan *jetstream.PubAck
		var errc <-chan error
		var timeout <-chan time.Time
		if f.head < len(f.queue) {
			h := f.queue[f.head]
			okc, errc = h.fut.Ok(), h.fut.Err()
			ackTimer.Reset(time.Until(h.deadline))
			timeout = ackTimer.C
		}
		select {
		case resp, ok := <-in:
			if !ok {
				return watchClosed(ctx)
			}
			lastActivity = time.Now()
			if err := f.handleReady(ctx, &resp, wch); err != nil {
				return err
			}
		case ack := <-okc:
			if err := f.onAck(ack); err != nil {
				return err
			}
		case err := <-errc:
			return f.onErr(err)
		case <-timeout:
			return f.onErr(fmt.Errorf("no acknowledgement after %v", p.cfg.AckTimeout))
		case now := <-progress.C:
			// Progress notifications tell that every change up to a
			// revision has been delivered: they make the publisher Ready
			// and move PublishedRevision past writes outside /registry/.
			if !p.ready.Load() || f.inflight == 0 && now.Sub(lastActivity) > idleProgressEvery && now.Sub(lastProgressReq) > idleProgressEvery {
				lastProgressReq = now
				if err := p.cfg.Watcher.RequestProgress(wctx); err != nil && ctx.Err() == nil {
					p.log.Debug("event publisher: etcd progress request", "err", err)
				}
			}
		case <-checkpointT.C:
			f.saveCheckpoint(ctx)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// handleReady publishes the messages of resp and of the responses wch
// has ready after it (see send), as long as they fit in MaxInFlight.
func (f *follower) handleReady(ctx context.Context, resp *clientv3.WatchResponse, wch clientv3.WatchChan) error {
	err := f.handle(resp)
ready:
	for err == nil && f.inflight+len(f.batch) < f.p.cfg.MaxInFlight {
		select {
		case more, ok := <-wch:
			if !ok {
				err = watchClosed(ctx)
				break ready
			}
			err = f.handle(&more)
		default:
			break ready
		}
	}
	// What came before an error is published: a compaction's gap
	// marker must follow it.
	if ferr := f.flush(ctx); ferr != nil {
		return ferr
	}
	return err
}

func watchClosed(ctx context.Context) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("etcd watch closed")
}

// handle adds the messages of one watch response to the batch. etcd never
// splits a revision across responses, so after it every revision up to
// the last event's is complete.
func (f *follower) handle(resp *clientv3.WatchResponse) error {
	if resp.CompactRevision != 0 {
		return &compactedError{rev: resp.CompactRevision}
	}
	if err := resp.Err(); err != nil {
		return fmt.Errorf("etcd watch: %w", err)
	}
	if resp.IsProgressNotify() {
		f.batchMark = max(f.batchMark, resp.Header.Revision)
		return nil
	}
	if len(resp.Events) == 0 {
		return nil
	}
	for _, ev := range resp.Events {
		rev := ev.Kv.ModRevision
		if rev == f.curRev {
			f.curIdx++
		} else {
			f.curRev, f.curIdx = rev, 0
		}
		msgs, n, ok := eventMessages(ev, f.curIdx)
		if !ok {
			f.p.log.Warn("event publisher: skipping a key outside the registry layout", "key", string(ev.Kv.Key), "revision", rev)
			continue
		}
		for _, m := range msgs[:n] {
			if !f.sent.less(m.pos) {
				continue // in the stream already
			}
			f.sent = m.pos
			f.batch = append(f.batch, m)
		}
	}
	f.batchMark = max(f.batchMark, resp.Events[len(resp.Events)-1].Kv.ModRevision)
	return nil
}

// flush publishes the batch, then marks its revisions complete.
func (f *follower) flush(ctx context.Context) error {
	for i, m := range f.batch {
		if err := f.send(ctx, m, i == len(f.batch)-1); err != nil {
			return err
		}
	}
	clear(f.batch)
	f.batch = f.batch[:0]
	if f.batchMark != 0 {
		f.enqueueMark(f.batchMark)
		f.batchMark = 0
	}
	return nil
}

// publish sends m alone.
func (f *follower) publish(ctx context.Context, m outMsg) error {
	f.sent = m.pos
	return f.send(ctx, m, true)
}

// send publishes m expecting the stream to end at f.seq and, but for the
// first message after a resynchronization, with the message sent before
// it, so that the stream refuses it unless every earlier message was
// stored: a failure anywhere fails everything after it, and a
// resynchronization starts from a stream without holes. Only the last
// message of a batch, and one that fills MaxInFlight, asks for an
// acknowledgement: its ack, with the sequence expected, tells that the
// stream holds the messages sent before it too. (The sequence alone would
// not: another writer's message could take the place of one refused.) A
// batch of creates under load then costs the stream, the connection and
// this client one ack instead of one per message.
func (f *follower) send(ctx context.Context, m outMsg, last bool) error {
	// An unacknowledged message never fills MaxInFlight (below): the
	// head of the queue is the ack to wait for.
	for f.inflight >= f.p.cfg.MaxInFlight {
		if err := f.awaitHead(ctx); err != nil {
			return err
		}
	}
	m.msg.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(f.seq, 10))
	if f.lastID != "" {
		m.msg.Header.Set(jetstream.ExpectedLastMsgIDHeader, f.lastID)
	}
	fitPayload(m.msg, f.js.Conn().MaxPayload())
	if hook := f.p.beforePublish; hook != nil {
		if err := hook(m.msg); err != nil {
			return err
		}
	}
	f.lastID = m.msg.Header.Get(subjects.HeaderMsgID)
	if !last && f.inflight+1 < f.p.cfg.MaxInFlight {
		if err := f.js.Conn().PublishMsg(m.msg); err != nil {
			return fmt.Errorf("publish %s (%s): %w", m.msg.Subject, m.pos.msgID(), err)
		}
		f.seq++
		f.inflight++
		f.unacked++
		return nil
	}
	fut, err := f.js.PublishMsgAsync(m.msg, jetstream.WithRetryAttempts(0))
	if err != nil {
		return fmt.Errorf("publish %s (%s): %w", m.msg.Subject, m.pos.msgID(), err)
	}
	f.seq++
	now := time.Now()
	f.push(pending{fut: fut, n: f.unacked + 1, pos: m.pos, seq: f.seq, sent: now, deadline: now.Add(f.p.cfg.AckTimeout)})
	f.inflight++
	f.unacked = 0
	return nil
}

func (f *follower) awaitHead(ctx context.Context) error {
	h := f.queue[f.head]
	t := time.NewTimer(time.Until(h.deadline))
	defer t.Stop()
	select {
	case ack := <-h.fut.Ok():
		return f.onAck(ack)
	case err := <-h.fut.Err():
		return f.onErr(err)
	case <-t.C:
		return f.onErr(fmt.Errorf("no acknowledgement after %v", f.p.cfg.AckTimeout))
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *follower) onAck(ack *jetstream.PubAck) error {
	h := f.queue[f.head]
	if ack.Duplicate || ack.Sequence != h.seq {
		return fmt.Errorf("publish %s: stream %s stored it as sequence %d (duplicate %v), expected %d",
			h.pos.msgID(), f.p.cfg.Stream, ack.Sequence, ack.Duplicate, h.seq)
	}
	f.pop()
	f.inflight -= h.n
	if f.p.ackLatency != nil {
		f.p.ackLatency.Observe(time.Since(h.sent).Seconds())
	}
	f.acked, f.ackedSeq = h.pos, h.seq
	f.dirty, f.progressed = true, true
	f.popMarks()
	return nil
}

// onErr drops the head, which failed, and returns err.
func (f *follower) onErr(err error) error {
	h := f.queue[f.head]
	f.pop()
	f.inflight -= h.n
	return fmt.Errorf("publish %s to stream %s: %w", h.pos.msgID(), f.p.cfg.Stream, err)
}

// enqueueMark records that every revision <= rev has been enqueued.
func (f *follower) enqueueMark(rev int64) {
	if rev <= f.complete {
		return
	}
	f.complete = rev
	if f.head == len(f.queue) {
		f.applyMark(rev)
		return
	}
	f.push(pending{mark: rev})
}

func (f *follower) popMarks() {
	for f.head < len(f.queue) && f.queue[f.head].fut == nil {
		f.applyMark(f.queue[f.head].mark)
		f.pop()
	}
}

// push appends to the queue, reusing the space of popped entries.
func (f *follower) push(e pending) {
	if f.head > 0 && len(f.queue) == cap(f.queue) && f.head >= len(f.queue)/2 {
		n := copy(f.queue, f.queue[f.head:])
		clear(f.queue[n:])
		f.queue, f.head = f.queue[:n], 0
	}
	f.queue = append(f.queue, e)
}

func (f *follower) pop() {
	f.queue[f.head] = pending{}
	f.head++
	if f.head == len(f.queue) {
		f.queue, f.head = f.queue[:0], 0
	}
}

func (f *follower) applyMark(rev int64) {
	f.p.advancePublished(rev)
	if rev >= f.target && !f.p.ready.Load() {
		f.p.ready.Store(true)
		f.p.log.Info("event publisher: caught up", "revision", rev)
	}
}
