package storage_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// evString is what a watcher must see of an event.
func evString(e storage.Event) string {
	return fmt.Sprintf("%s %d %s %s prev=%s", e.Type, e.Object.Rev, e.Object.Key, e.Object.Value, e.Prev)
}

// collect reads n events, failing the test after 20 s. It also checks the
// Progress marks among them: their revisions only grow, and no event
// after a mark has a revision at or below it (the mark said every change
// up to it had been sent).
func collect(t *testing.T, evs <-chan storage.Event, n int, slow bool) []string {
	t.Helper()
	var got []string
	var mark int64
	timeout := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case e, ok := <-evs:
			if !ok {
				t.Fatalf("watch ended after %d of %d events", len(got), n)
			}
			if e.Type == storage.Progress {
				if e.Object.Rev < mark {
					t.Errorf("progress went back from %d to %d", mark, e.Object.Rev)
				}
				mark = e.Object.Rev
				continue
			}
			if e.Object.Rev <= mark {
				t.Errorf("event %s after progress mark %d", evString(e), mark)
			}
			got = append(got, evString(e))
			if slow {
				time.Sleep(2 * time.Millisecond)
			}
		case <-timeout:
			t.Fatalf("%d of %d events after 20s", len(got), n)
		}
	}
	return got
}

// writeHistory makes n changes under two namespaces of configmaps (creates,
// updates, deletes, and transactions that change two keys in one
// revision) and returns the revision before them.
func writeHistory(t *testing.T, c *clientv3.Client, s *storage.Store, n int) int64 {
	t.Helper()
	ctx := context.Background()
	start, err := s.CurrentRev(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ns := []string{"a", "b"}[i%2]
		k := storage.Key("configmaps", ns, fmt.Sprintf("c%d", i%5))
		switch i % 4 {
		case 0, 1:
			if _, err := c.Put(ctx, k, fmt.Sprintf(`{"i":%d}`, i)); err != nil {
				t.Fatal(err)
			}
		case 2:
			if _, err := c.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		case 3:
			k2 := storage.Key("configmaps", "a", fmt.Sprintf("t%d", i%3))
			if _, err := c.Txn(ctx).Then(clientv3.OpPut(k, fmt.Sprintf(`{"t":%d}`, i)), clientv3.OpPut(k2, fmt.Sprintf(`{"t":%d}`, i))).Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Another resource must not leak into the feed of configmaps.
	if _, err := c.Put(ctx, storage.Key("configmapsx", "a", "x"), `{}`); err != nil {
		t.Fatal(err)
	}
	return start
}

// TestWatchCacheMatchesStoreWatch: watchers served by the cache — from
// different revisions, of one namespace or all, fast or slow, through a ring
// far smaller than the history — see exactly what Store.Watch delivers.
func TestWatchCacheMatchesStoreWatch(t *testing.T) {
	_, c := testenv.Etcd(t)
	s := storage.New(c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 200
	start := writeHistory(t, c, s, n)
	root := storage.Prefix("configmaps", "")

	// What Store.Watch delivers, per prefix and start.
	direct := func(prefix string, from int64) []string {
		var want []string
		for _, e := range collectAll(t, s, prefix, from) {
			want = append(want, evString(e))
		}
		return want
	}

	for _, size := range []int{4, 64, 4096} {
		t.Run(fmt.Sprint("ring ", size), func(t *testing.T) {
			wc := storage.NewWatchCache(s, size)
			defer wc.Close()
			var wg sync.WaitGroup
			for _, tc := range []struct {
				prefix string
				from   int64
				slow   bool
			}{
				{root, start + 1, false},
				{root, start + 1, true},
				{storage.Prefix("configmaps", "a"), start + 1, false},
				{storage.Prefix("configmaps", "b"), start + 20, true},
				{root, start + n/2, false},
				{root, start + 3, false},
			} {
				want := direct(tc.prefix, tc.from)
				wg.Go(func() {
					evs, _ := wc.Watch(ctx, root, tc.prefix, tc.from)
					got := collect(t, evs, len(want), tc.slow)
					for i := range want {
						if got[i] != want[i] {
							t.Errorf("%s from %d (slow %v): event %d is %q, want %q", tc.prefix, tc.from, tc.slow, i, got[i], want[i])
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// collectAll lists what a watch of prefix from from must deliver: Store's
// own watch of all keys, filtered, up to the current revision.
func collectAll(t *testing.T, s *storage.Store, prefix string, from int64) []storage.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cur, err := s.CurrentRev(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []storage.Event
	if from > cur {
		return nil
	}
	evs, errc := s.Watch(ctx, storage.Root, from)
	for e := range evs {
		if len(e.Object.Key) >= len(prefix) && e.Object.Key[:len(prefix)] == prefix {
			out = append(out, e)
		}
		if e.Object.Rev >= cur {
			return out
		}
	}
	t.Fatalf("history watch ended: %v", <-errc)
	return nil
}

// TestWatchCacheLiveAndCompacted: a watcher gets changes made after it
// started, a watch from a compacted revision gets ErrCompacted, and
// watchers go on when the cache is closed.
func TestWatchCacheLiveAndCompacted(t *testing.T) {
	_, c := testenv.Etcd(t)
	s := storage.New(c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wc := storage.NewWatchCache(s, 8)
	root := storage.Prefix("configmaps", "")
	k := storage.Key("configmaps", "a", "x")
	r0, _ := s.CurrentRev(ctx)
	evs, _ := wc.Watch(ctx, root, root, r0+1)
	r1, err := s.Create(ctx, k, []byte(`{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, evs, 1, false); got[0] != fmt.Sprintf("ADDED %d %s {\"v\":1} prev=", r1, k) {
		t.Fatalf("live event: %s", got[0])
	}
	wc.Close()
	r2, err := s.Update(ctx, k, []byte(`{"v":2}`), r1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, evs, 1, false); got[0] != fmt.Sprintf("MODIFIED %d %s {\"v\":2} prev={\"v\":1}", r2, k) {
		t.Fatalf("event after Close: %s", got[0])
	}

	// A feed that received r1 before etcd compacted it serves it, as
	// kube-apiserver's watch cache does; a cache without that feed, or a
	// feed that dropped r1, cannot.
	wc2 := storage.NewWatchCache(s, 8)
	defer wc2.Close()
	collect(t, first(wc2.Watch(ctx, root, root, r0+1)), 2, false)
	if err := s.Compact(ctx, r2); err != nil {
		t.Fatal(err)
	}
	wc3 := storage.NewWatchCache(s, 8)
	defer wc3.Close()
	for range 2 {
		_, errc := wc3.Watch(ctx, root, root, r1)
		if err := <-errc; !errors.Is(err, storage.ErrCompacted) {
			t.Fatalf("watch from compacted revision without a feed: %v", err)
		}
	}
	want := []string{fmt.Sprintf("ADDED %d %s {\"v\":1} prev=", r1, k), fmt.Sprintf("MODIFIED %d %s {\"v\":2} prev={\"v\":1}", r2, k)}
	for range 2 {
		if got := collect(t, first(wc2.Watch(ctx, root, root, r1)), 2, false); got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("watch from compacted revision %d held by the feed: %q, want %q", r1, got, want)
		}
	}
	evs2, _ := wc2.Watch(ctx, root, root, r2)
	// (Its previous value is the feed's copy; a watch of its own from etcd
	// would have none, compacted away.)
	if got := collect(t, evs2, 1, false); got[0] != want[1] {
		t.Fatalf("watch at the compaction revision: %s", got[0])
	}
	var fill int64
	for i := range 8 {
		rev, err := s.Create(ctx, storage.Key("configmaps", "a", fmt.Sprint("fill", i)), []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		fill = rev
	}
	if err := s.Compact(ctx, fill); err != nil {
		t.Fatal(err)
	}
	// Once the feed has the fills, it holds only the last 8 revisions: r2
	// is gone.
	collect(t, first(wc2.Watch(ctx, root, root, fill)), 1, false)
	if _, errc := wc2.Watch(ctx, root, root, r2); !errors.Is(<-errc, storage.ErrCompacted) {
		t.Fatalf("watch from %d, compacted and dropped by the feed: not ErrCompacted", r2)
	}
}

// progressTo reads evs until a Progress mark at or above rev, asking wc
// (unless nil) for progress notifications meanwhile, and failing on any other event and
// after 20 s.
func progressTo(t *testing.T, wc *storage.WatchCache, evs <-chan storage.Event, rev int64) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-evs:
			if !ok {
				t.Fatalf("watch ended before progress %d", rev)
			}
			if e.Type != storage.Progress {
				t.Fatalf("event %s, want only progress", evString(e))
			}
			if e.Object.Rev >= rev {
				return
			}
		case <-tick.C:
			if wc == nil {
				continue
			}
			if err := wc.RequestProgress(context.Background()); err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatalf("no progress to %d after 20s", rev)
		}
	}
}

// TestWatchCacheProgress: a watcher of a namespace where nothing changes
// learns the revisions of the changes of other namespaces, which its feed
// received, and, after an etcd progress notification, those of other
// resources, which its feed never sees; so does a watcher on a watch of
// its own (it asked for a revision the feed dropped).
func TestWatchCacheProgress(t *testing.T) {
	_, c := testenv.Etcd(t)
	s := storage.New(c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wc := storage.NewWatchCache(s, 4)
	defer wc.Close()
	root := storage.Prefix("configmaps", "")
	quiet := storage.Prefix("configmaps", "quiet")
	r0, _ := s.CurrentRev(ctx)
	evs, _ := wc.Watch(ctx, root, quiet, r0+1)

	var last int64
	for i := range 10 {
		rev, err := s.Create(ctx, storage.Key("configmaps", "busy", fmt.Sprint(i)), []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		last = rev
	}
	// No progress notification needed: the feed had the changes.
	progressTo(t, nil, evs, last)
	// The feed's ring (4 events) no longer holds r0+1: this watcher has an
	// etcd watch of its own, of its namespace only.
	direct, _ := wc.Watch(ctx, root, quiet, r0+1)
	progressTo(t, wc, direct, last)

	other, err := s.Create(ctx, storage.Key("secrets", "busy", "s"), []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	progressTo(t, wc, evs, other)
	progressTo(t, wc, direct, other)

	// The marks come after the events of their revisions.
	rev, err := s.Create(ctx, storage.Key("configmaps", "quiet", "q"), []byte(`{"q":1}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []<-chan storage.Event{evs, direct} {
		if got := collect(t, w, 1, false); got[0] != fmt.Sprintf("ADDED %d %s {\"q\":1} prev=", rev, storage.Key("configmaps", "quiet", "q")) {
			t.Fatalf("event: %s", got[0])
		}
		if e := <-w; e.Type != storage.Progress || e.Object.Rev != rev {
			t.Fatalf("after the event: %s, want progress %d", evString(e), rev)
		}
	}
}

func first(evs <-chan storage.Event, _ <-chan error) <-chan storage.Event { return evs }

// TestWatchCacheEndsStalledDirectWatch: a watcher served by a watch of
// its own from etcd (its revision is older than the feed's) that stops
// taking events has its watch ended, rather than the etcd client
// buffering every later change for it without bound; what it got before
// is a prefix of the changes, in order.
func TestWatchCacheEndsStalledDirectWatch(t *testing.T) {
	_, c := testenv.Etcd(t)
	s := storage.New(c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wc := storage.NewWatchCache(s, 8)
	defer wc.Close()
	storage.SetStallTimeout(wc, 100*time.Millisecond)
	root := storage.Prefix("configmaps", "")
	r0, err := s.CurrentRev(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, storage.Key("configmaps", "a", "first"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// A feed that starts after r0+1, and a watcher from r0+1: its own
	// watch. (The feed must be there first: a watcher that started it
	// would be served by it, not stalled.)
	wc.Watch(ctx, root, root, r0+2)
	for !storage.HasFeed(wc, root) {
		time.Sleep(time.Millisecond)
	}
	evs, errc := wc.Watch(ctx, root, root, r0+1)
	const n = 400
	for i := range n {
		if _, err := s.Create(ctx, storage.Key("configmaps", "a", fmt.Sprint("c", i)), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	// The watcher takes nothing until its channel has been full for longer
	// than the stall timeout, then reads what it was left. (Waiting only
	// for the writes was not enough: on a fast etcd they can take less
	// than the stall timeout, and the watcher then read everything.)
	for deadline := time.Now().Add(20 * time.Second); len(evs) < cap(evs); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher's channel holds %d events of %d after 20s", len(evs), cap(evs))
		}
	}
	time.Sleep(300 * time.Millisecond) // three stall timeouts
	got := 0
	last := int64(0)
	for {
		select {
		case e, ok := <-evs:
			if !ok {
				if err := <-errc; err != nil {
					t.Fatalf("stalled watch ended with %v, want no error", err)
				}
				if got == n+1 {
					t.Fatalf("stalled watch ended after all %d changes", got)
				}
				return
			}
			if e.Type == storage.Progress {
				continue
			}
			if e.Object.Rev != last+1 && last != 0 {
				t.Fatalf("event at %d after %d", e.Object.Rev, last)
			}
			last = e.Object.Rev
			got++
		case <-time.After(20 * time.Second):
			t.Fatalf("the stalled watch got %d events and is still open", got)
		}
	}
}
