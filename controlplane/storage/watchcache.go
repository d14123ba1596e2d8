package storage

import (
	"context"
	"strings"
	"sync"
)

// DefaultWatchCacheSize is how many recent events a WatchCache keeps per
// resource for watchers to catch up from.
const DefaultWatchCacheSize = 2048

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
// watch of its own from etcd (Store.Watch) from where it stands, so the
// events a watcher sees are exactly Store.Watch's.
type WatchCache struct {
	store *Store
	size  int
	ctx   context.Context
	stop  context.CancelFunc

	mu    sync.Mutex
	feeds map[string]*feed
}

// NewWatchCache returns a cache that keeps size events per feed
// (DefaultWatchCacheSize when size <= 0). Close stops its feeds.
func NewWatchCache(s *Store, size int) *WatchCache {
	if size <= 0 {
		size = DefaultWatchCacheSize
	}
	ctx, stop := context.WithCancel(context.Background())
	return &WatchCache{store: s, size: size, ctx: ctx, stop: stop, feeds: map[string]*feed{}}
}

// Close ends the feeds' etcd watches; watchers still running go on with
// watches of their own.
func (c *WatchCache) Close() { c.stop() }

// Watch is Store.Watch(ctx, prefix, fromRev), served from the feed of root,
// a prefix that contains prefix (a resource's prefix, for the watch of one
// namespace or of all).
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
		events, errs := c.store.Watch(ctx, prefix, next)
		for ev := range events {
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
		if err := <-errs; err != nil {
			errc <- err
		}
	}()
	return out, errc
}

// follow sends the feed's events under prefix from fromRev on to out. It
// returns false when ctx ended, and otherwise the revision a watch of its
// own must start from: the feed does not hold fromRev, the watcher fell
// behind it, or it ended.
func (c *WatchCache) follow(ctx context.Context, root, prefix string, fromRev int64, out chan<- Event) (int64, bool) {
	next := fromRev
	f, seq, ok := c.subscribe(ctx, root, fromRev)
	if !ok {
		return next, true
	}
	var buf []Event
	for {
		var wake <-chan struct{}
		buf, seq, wake, ok = f.read(seq, buf[:0])
		if !ok {
			return next, true
		}
		if len(buf) == 0 {
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
			select {
			case out <- ev:
			case <-ctx.Done():
				return 0, false
			}
		}
		// read returns whole revisions, so all of this one has been sent.
		next = max(next, buf[len(buf)-1].Object.Rev+1)
	}
}

// subscribe returns root's feed (starting one at fromRev if there is none)
// and the sequence number to read it from, or false when the feed no longer
// holds fromRev or etcd compacted it: such a watch fails with ErrCompacted
// (kube-apiserver would still serve it from its cache; our users are
// promised 410 Gone once a revision is compacted).
func (c *WatchCache) subscribe(ctx context.Context, root string, fromRev int64) (*feed, uint64, bool) {
	if fromRev <= 0 || c.store.compacted(ctx, fromRev) {
		return nil, 0, false
	}
	c.mu.Lock()
	f := c.feeds[root]
	if f == nil || f.ended() {
		f = newFeed(c.size, fromRev-1)
		c.feeds[root] = f
		go f.run(c.ctx, c.store, root, fromRev)
	}
	c.mu.Unlock()
	seq, ok := f.start(fromRev)
	return f, seq, ok
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
	wake  chan struct{} // closed when events arrive or the feed ends
	done  bool
}

func newFeed(size int, floor int64) *feed {
	return &feed{ring: make([]Event, size), floor: floor, wake: make(chan struct{})}
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
	_ = s.follow(ctx, prefix, fromRev, func(evs []Event) bool {
		f.append(evs)
		return true
	})
}

// append adds the events of whole revisions, dropping the oldest revisions
// to make room.
func (f *feed) append(evs []Event) {
	if len(evs) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	size := len(f.ring)
	for _, ev := range evs {
		if f.n == size {
			f.drop()
		}
		f.ring[(f.first+uint64(f.n))%uint64(size)] = ev
		f.n++
	}
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
// them with the sequence number to read next. With no event to read it
// returns the channel that is closed when there are. It returns false when
// seq was dropped, or when the feed ended and everything was read.
func (f *feed) read(seq uint64, buf []Event) ([]Event, uint64, <-chan struct{}, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq < f.first {
		return buf, seq, nil, false
	}
	end := f.first + uint64(f.n)
	if seq == end {
		return buf, seq, f.wake, !f.done
	}
	size := uint64(len(f.ring))
	for ; seq < end; seq++ {
		ev := f.ring[seq%size]
		if len(buf) >= maxRead && ev.Object.Rev != buf[len(buf)-1].Object.Rev {
			break
		}
		buf = append(buf, ev)
	}
	return buf, seq, nil, true
}
