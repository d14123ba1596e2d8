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

// collect reads n events, failing the test after 20 s.
func collect(t *testing.T, evs <-chan storage.Event, n int, slow bool) []string {
	t.Helper()
	var got []string
	timeout := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case e, ok := <-evs:
			if !ok {
				t.Fatalf("watch ended after %d of %d events", len(got), n)
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

	// A feed that received r1 before etcd compacted it does not serve it.
	wc2 := storage.NewWatchCache(s, 8)
	defer wc2.Close()
	collect(t, first(wc2.Watch(ctx, root, root, r0+1)), 2, false)
	if err := s.Compact(ctx, r2); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, errc := wc2.Watch(ctx, root, root, r1)
		if err := <-errc; !errors.Is(err, storage.ErrCompacted) {
			t.Fatalf("watch from compacted revision: %v", err)
		}
	}
	evs2, _ := wc2.Watch(ctx, root, root, r2)
	// (Its previous value is the feed's copy; a watch of its own from etcd
	// would have none, compacted away.)
	if got := collect(t, evs2, 1, false); got[0] != fmt.Sprintf("MODIFIED %d %s {\"v\":2} prev={\"v\":1}", r2, k) {
		t.Fatalf("watch at the compaction revision: %s", got[0])
	}
}

func first(evs <-chan storage.Event, _ <-chan error) <-chan storage.Event { return evs }
