package storage

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// DefaultWatchCacheSize is how many recent events a WatchCache keeps per
// resource for watchers to catch up from.
const DefaultWatchCacheSize = 2048

// stallTimeout is how long a watcher on a watch of its own may leave its
// channel full before its watch ends (WatchCache.stallTimeout; tests
// shorten it).
const stallTimeout = 10 * time.Second

// progressInterval is how often a WatchCache asks etcd for progress
// notifications, so that the feeds of quiet resources, and their
// watchers' Progress marks, keep up with etcd's revision.
const progressInterval = 5 * time.Second

// WatchCache serves watches from one etcd watch per resource (a feed)
// instead of one etcd watch per watcher, as kube-apiserver's watch cache
// does. With an etcd watch per watcher, every change is encoded and sent by
// etcd once per watcher over the client's single watch stream; under a
// burst of writes that stream's buffer overflows, etcd moves the watchers
// it could not serve to its catch-up loop, which reads their events back
// from the database every 100 ms, and informers fall seconds behind.
//
// A feed keeps the last events it received in a ring. A watcher reads the
// ring from its starting revision and then follows it; one that asks for a
// revision the ring no longer holds, or that falls behind the ring, gets a
// watch of its own from etcd (as Store.Watch) from where it stands, so the
// events a watcher sees are exactly Store.Watch's. The etcd client keeps,
// without bound, the events of such a watch that its watcher has not
// taken, so a watcher that takes none for a while (a client that stopped
// reading its watch response) has its watch ended instead, as
// kube-apiserver ends the watchers that cannot keep up; its client
// watches again from the last event it got. As kube-apiserver's
// watch cache, a feed serves a revision it holds even after etcd compacted
// it: its ring has every change since, with previous values.
//
// A feed also knows the revision up to which it has received every change
// of its prefix: its last event's, or a later one from an etcd progress
// notification (requested every progressInterval). Watchers get it as
// Progress marks, including the revisions of changes outside their prefix.
type WatchCache struct {
	store *Store
	size  int
	ctx   context.Context
	stop  context.CancelFunc

	mu    sync.Mutex
	feeds map[string]*feed
	// progressOnce starts the loop that requests progress notifications.
	progressOnce sync.Once
	// direct counts the watchers on watches of their own.
	direct atomic.Int64
	// stallTimeout: see the constant.
	stallTimeout time.Duration
}

// feedStream puts the feeds' etcd watches on a gRPC stream of their own
// (the etcd client keeps one per distinct metadata): etcd answers a
// progress request only when every watch of the stream is up to date, and
// the watches of watchers that fell behind must not hold the feeds back.
func feedStream(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "wasmfleet-watcher", "watch-cache")
}

// NewWatchCache returns a cache that keeps size events per feed
// (DefaultWatchCacheSize when size <= 0). Close stops its feeds.
func NewWatchCache(s *Store, size int) *WatchCache {
	if size <= 0 {
		size = DefaultWatchCacheSize
	}
	ctx, stop := context.WithCancel(context.Background())
	return &WatchCache{store: s, size: size, ctx: ctx, stop: stop, feeds: map[string]*feed{}, stallTimeout: stallTimeout}
}

// Close ends the feeds' etcd watches; watchers still running go on with
// watches of their own.
func (c *WatchCache) Close() { c.stop() }

// Watch is Store.Watch(ctx, prefix, fromRev), served from the feed of root,
// a prefix that contains prefix (a resource's prefix, for the watch of one
// namespace or of all), with Progress marks among the events: after the
// events of each batch of revisions, and when etcd reports progress, a
// Progress event whose Object.Rev is the revision up to which every change
// under prefix has been sent. Its revisions only grow, each above the last
// event sent before it. A watcher that leaves the events channel full
// for long while it is served by a watch of its own (see WatchCache) has
// both channels closed without an error.
func (c *WatchCache) Watch(ctx context.Context, root, prefix string, fromRev int64) (<-chan Event, <-chan error) {
	out := make(chan Event, 100)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		defer close(errc)
		next, ok := c.follow(ctx, root, prefix, fromRev, out)
		if !ok {
			return
		}
		c.direct.Add(1)
		defer c.direct.Add(-1)
		err := c.store.follow(ctx, prefix, next, func(evs []Event, rev int64) bool {
			for _, ev := range evs {
				if !c.sendOrStall(ctx, out, ev) {
					return false
				}
			}
			if rev >= next {
				next = rev + 1
				return c.sendOrStall(ctx, out, progressMark(rev))
			}
			return true
		})
		if err != nil {
			errc <- err
		}
	}()
	return out, errc
}

// sendOrStall is send that also gives up when out stays full for
// c.stallTimeout.
func (c *WatchCache) sendOrStall(ctx context.Context, out chan<- Event, ev Event) bool {
	select {
	case out <- ev:
		return true
	default:
	}
	t := time.NewTimer(c.stallTimeout)
	defer t.Stop()
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

func progressMark(rev int64) Event { return Event{Type: Progress, Object: Object{Rev: rev}} }

// send sends ev to out; false when ctx ended first.
func send(ctx context.Context, out chan<- Event, ev Event) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// follow sends the feed's events under prefix from fromRev on to out, each
// batch followed by a Progress mark. It returns false when ctx ended, and
// otherwise the revision a watch of its own must start from: the feed does
// not hold fromRev, the watcher fell behind it, or it ended.
func (c *WatchCache) follow(ctx context.Context, root, prefix string, fromRev int64, out chan<- Event) (int64, bool) {
	next := fromRev
	f, seq, ok := c.subscribe(ctx, root, fromRev)
	if !ok {
		return next, true
	}
	var buf []Event
	for {
		var (
			done int64
			wake <-chan struct{}
		)
		buf, seq, done, wake, ok = f.read(seq, buf[:0])
		if !ok {
			return next, true
		}
		if len(buf) == 0 && done < next {
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return 0, false
			}
		}
		for _, ev := range buf {
			if ev.Object.Rev < next || !strings.HasPrefix(ev.Object.Key, prefix) {
				continue
			}
			if !send(ctx, out, ev) {
				return 0, false
			}
		}
		// The feed has had every change up to done, and all of those
		// under prefix have now been sent, some perhaps before fromRev.
		if done >= next {
			next = done + 1
			if !send(ctx, out, progressMark(done)) {
				return 0, false
			}
		}
	}
}

// subscribe returns root's feed (starting one at fromRev if there is none)
// and the sequence number to read it from, or false when the feed no longer
// holds fromRev, or there is no feed and etcd compacted fromRev: such a
// watch fails with ErrCompacted. A feed that holds a compacted fromRev
// serves it, as kube-apiserver's watch cache does: it has every change
// since, with the previous values.
func (c *WatchCache) subscribe(ctx context.Context, root string, fromRev int64) (*feed, uint64, bool) {
	if fromRev <= 0 {
		return nil, 0, false
	}
	c.mu.Lock()
	f := c.feeds[root]
	c.mu.Unlock()
	if f == nil || f.ended() {
		if c.store.compacted(ctx, fromRev) {
			return nil, 0, false
		}
		c.mu.Lock()
		if f = c.feeds[root]; f == nil || f.ended() {
			f = newFeed(c.size, fromRev-1)
			c.feeds[root] = f
			go f.run(c.ctx, c.store, root, fromRev)
		}
		c.mu.Unlock()
		c.progressOnce.Do(func() { go c.requestProgressEvery(progressInterval) })
	}
	seq, ok := f.start(fromRev)
	return f, seq, ok
}

// RequestProgress asks etcd for a progress notification to the feeds and
// to the watchers on watches of their own. etcd sends one only when every
// watch of a stream has had every change up to its current revision; the
// notification then advances the feeds of resources that did not change,
// and the watchers that follow them get it as a Progress mark.
func (c *WatchCache) RequestProgress(ctx context.Context) error {
	if err := c.store.c.RequestProgress(clientv3.WithRequireLeader(feedStream(ctx))); err != nil {
		return err
	}
	if c.direct.Load() > 0 {
		// The stream of Store.follow's other watches.
		return c.store.c.RequestProgress(clientv3.WithRequireLeader(ctx))
	}
	return nil
}

func (c *WatchCache) requestProgressEvery(d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			_ = c.RequestProgress(c.ctx)
		}
	}
}

// feed is one etcd watch of a prefix and a ring of its latest events.
type feed struct {
	mu    sync.Mutex
	ring  []Event
	first uint64 // sequence number of the oldest event held
	n     int    // events held
	// floor: the ring holds every event received with a revision above it;
	// those at or below it were dropped.
	floor int64
	// rev: the feed has received every change up to this revision.
	rev  int64
	wake chan struct{} // closed when events arrive or the feed ends
	done bool
}

func newFeed(size int, floor int64) *feed {
	return &feed{ring: make([]Event, size), floor: floor, rev: floor, wake: make(chan struct{})}
}

func (f *feed) ended() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done
}

// run follows etcd from fromRev until ctx ends or the watch fails (a
// compacted fromRev, etcd gone); the feed then ends and its watchers
// continue on watches of their own.
func (f *feed) run(ctx context.Context, s *Store, prefix string, fromRev int64) {
	defer f.end()
	_ = s.follow(feedStream(ctx), prefix, fromRev, func(evs []Event, rev int64) bool {
		f.append(evs, rev)
		return true
	})
}

// append adds the events of whole revisions, dropping the oldest revisions
// to make room, and records that the feed has every change up to rev.
func (f *feed) append(evs []Event, rev int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(evs) == 0 && rev <= f.rev {
		return
	}
	size := len(f.ring)
	for _, ev := range evs {
		if f.n == size {
			f.drop()
		}
		f.ring[(f.first+uint64(f.n))%uint64(size)] = ev
		f.n++
	}
	f.rev = max(f.rev, rev)
	close(f.wake)
	f.wake = make(chan struct{})
}

// drop removes the oldest revision: at least one event, and every other
// event of its revision, so that floor stays a revision boundary.
func (f *feed) drop() {
	size := uint64(len(f.ring))
	f.floor = f.ring[f.first%size].Object.Rev
	for f.n > 0 && f.ring[f.first%size].Object.Rev == f.floor {
		f.ring[f.first%size] = Event{}
		f.first++
		f.n--
	}
}

func (f *feed) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = true
	close(f.wake)
}

// start returns the sequence number to read from for a watch from fromRev
// (the oldest held: read's caller skips older revisions), or false when
// events at or after fromRev were dropped.
func (f *feed) start(fromRev int64) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done || fromRev <= f.floor {
		return 0, false
	}
	return f.first, true
}

// maxRead bounds the events one read copies (it ends with a whole
// revision, so it may copy a few more).
const maxRead = 256

// read appends to buf the events from sequence number seq on and returns
// them with the sequence number to read next and the revision up to which
// they complete the feed's changes (those read before included). With no
// event to read it also returns the channel that is closed when there are
// events or progress. It returns false when seq was dropped, or when the
// feed ended and everything was read.
func (f *feed) read(seq uint64, buf []Event) ([]Event, uint64, int64, <-chan struct{}, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq < f.first {
		return buf, seq, 0, nil, false
	}
	end := f.first + uint64(f.n)
	if seq == end {
		return buf, seq, f.rev, f.wake, !f.done
	}
	size := uint64(len(f.ring))
	for ; seq < end; seq++ {
		ev := f.ring[seq%size]
		if len(buf) >= maxRead && ev.Object.Rev != buf[len(buf)-1].Object.Rev {
			// The events left are of later revisions.
			return buf, seq, buf[len(buf)-1].Object.Rev, nil, true
		}
		buf = append(buf, ev)
	}
	return buf, seq, f.rev, nil, true
}
