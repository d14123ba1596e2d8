package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

func TestCRUDAndConflicts(t *testing.T) {
	_, c := testenv.Etcd(t)
	s := storage.New(c)
	ctx := context.Background()
	key := storage.Key("pods", "default", "a")
	if key != "/registry/pods/default/a" || storage.Key("nodes", "", "n1") != "/registry/nodes/n1" {
		t.Fatalf("key layout: %s", key)
	}
	rev, err := s.Create(ctx, key, []byte(`{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, key, []byte(`{"v":2}`)); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	o, err := s.Get(ctx, key)
	if err != nil || o.Rev != rev || string(o.Value) != `{"v":1}` {
		t.Fatalf("get: %+v %v", o, err)
	}
	rev2, err := s.Update(ctx, key, []byte(`{"v":2}`), rev, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, key, []byte(`{"v":3}`), rev, 0); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	if _, err := s.Delete(ctx, key, rev); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("stale delete: %v", err)
	}
	if _, err := s.Delete(ctx, key, rev2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := s.Update(ctx, key, []byte(`{}`), rev2, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("update after delete: %v", err)
	}
	if _, err := s.Delete(ctx, key, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("delete after delete: %v", err)
	}
}

func TestListPagesAtOneRevision(t *testing.T) {
	_, c := testenv.Etcd(t)
	s := storage.New(c)
	ctx := context.Background()
	for i := range 5 {
		if _, err := s.Create(ctx, storage.Key("pods", "ns", fmt.Sprintf("p%d", i)), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	// A pod in another namespace and another resource must not leak in.
	s.Create(ctx, storage.Key("pods", "ns2", "x"), []byte(`{}`))
	s.Create(ctx, storage.Key("podsx", "ns", "x"), []byte(`{}`))
	page, err := s.List(ctx, storage.Prefix("pods", "ns"), storage.ListOptions{Limit: 3})
	if err != nil || len(page.Items) != 3 || !page.More {
		t.Fatalf("page 1: %+v %v", page, err)
	}
	// A write between pages is not seen by the second page.
	s.Create(ctx, storage.Key("pods", "ns", "p9"), []byte(`{}`))
	next := page.Items[2].Key + "\x00"
	page2, err := s.List(ctx, storage.Prefix("pods", "ns"), storage.ListOptions{Rev: page.Rev, From: next})
	if err != nil || len(page2.Items) != 2 || page2.More {
		t.Fatalf("page 2: %+v %v", page2, err)
	}
	all, _ := s.List(ctx, storage.Prefix("pods", ""), storage.ListOptions{})
	if len(all.Items) != 7 {
		t.Fatalf("all namespaces: %d items", len(all.Items))
	}
}

func TestWatchOrderAndCompaction(t *testing.T) {
	_, c := testenv.Etcd(t)
	s := storage.New(c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start, _ := s.CurrentRev(ctx)
	k := storage.Key("configmaps", "default", "c")
	r1, _ := s.Create(ctx, k, []byte(`{"a":1}`))
	r2, _ := s.Update(ctx, k, []byte(`{"a":2}`), r1, 0)
	r3, _ := s.Delete(ctx, k, r2)
	evs, errc := s.Watch(ctx, storage.Prefix("configmaps", ""), start+1)
	want := []struct {
		typ storage.EventType
		rev int64
		val string
	}{{storage.Added, r1, `{"a":1}`}, {storage.Modified, r2, `{"a":2}`}, {storage.Deleted, r3, `{"a":2}`}}
	for _, w := range want {
		e := <-evs
		if e.Type != w.typ || e.Object.Rev != w.rev || string(e.Object.Value) != w.val {
			t.Fatalf("event %+v, want %+v", e, w)
		}
	}
	if err := s.Compact(ctx, r3); err != nil {
		t.Fatal(err)
	}
	_, errc2 := s.Watch(ctx, storage.Prefix("configmaps", ""), r1)
	if err := <-errc2; !errors.Is(err, storage.ErrCompacted) {
		t.Fatalf("watch from compacted revision: %v", err)
	}
	if _, err := s.List(ctx, storage.Prefix("configmaps", ""), storage.ListOptions{Rev: r1}); !errors.Is(err, storage.ErrCompacted) {
		t.Fatalf("list at compacted revision: %v", err)
	}
	cancel()
	for range evs {
	}
	<-errc
}

func TestInjectResourceVersion(t *testing.T) {
	for in, want := range map[string]string{
		`{"kind":"Pod","metadata":{"name":"a"},"spec":{}}`: `{"kind":"Pod","metadata":{"resourceVersion":"42","name":"a"},"spec":{}}`,
		`{"kind":"Pod","metadata":{}}`:                     `{"kind":"Pod","metadata":{"resourceVersion":"42"}}`,
		`{"kind":"X"}`:                                     `{"kind":"X"}`,
	} {
		if got := string(storage.InjectResourceVersion([]byte(in), 42)); got != want {
			t.Errorf("inject(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestTTL: objects created with a TTL share a lease, keep it through
// updates, and are deleted by etcd when it expires.
func TestTTL(t *testing.T) {
	_, c := testenv.Etcd(t)
	s := storage.New(c)
	ctx := context.Background()
	a, b := storage.Key("events", "default", "a"), storage.Key("events", "default", "b")
	if _, err := s.CreateGuarded(ctx, a, []byte(`{}`), "", time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateGuarded(ctx, b, []byte(`{}`), "", time.Second); err != nil {
		t.Fatal(err)
	}
	oa, _ := s.Get(ctx, a)
	ob, _ := s.Get(ctx, b)
	if oa.Lease == 0 || oa.Lease != ob.Lease {
		t.Fatalf("leases %x and %x, want one shared lease", oa.Lease, ob.Lease)
	}
	if _, err := s.Update(ctx, a, []byte(`{"count":2}`), oa.Rev, oa.Lease); err != nil {
		t.Fatal(err)
	}
	if o, _ := s.Get(ctx, a); o.Lease != oa.Lease {
		t.Fatalf("update dropped the lease: %x", o.Lease)
	}
	ttl, err := c.TimeToLive(ctx, clientv3.LeaseID(oa.Lease))
	if err != nil || ttl.GrantedTTL < 1 || ttl.GrantedTTL > 61 {
		t.Fatalf("lease TTL %+v %v, want between 1s and 1s+1m", ttl, err)
	}
	// Expire it now rather than waiting a minute: etcd deletes its keys.
	if _, err := c.Revoke(ctx, clientv3.LeaseID(oa.Lease)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{a, b} {
		if _, err := s.Get(ctx, k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s after its lease ended: %v", k, err)
		}
	}
}

// TestLeaseReuse: a lease serves the writes of a minute; later ones get a
// new one, so that what Lease returns keeps an object for its TTL from
// now.
func TestLeaseReuse(t *testing.T) {
	_, c := testenv.Etcd(t)
	s := storage.New(c)
	now := time.Now()
	storage.SetLeaseClock(s, func() time.Time { return now })
	ctx := context.Background()
	first, err := s.Lease(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Second)
	if again, err := s.Lease(ctx, time.Hour); err != nil || again != first {
		t.Errorf("within the minute: lease %x %v, want %x again", again, err, first)
	}
	now = now.Add(2 * time.Second)
	if later, err := s.Lease(ctx, time.Hour); err != nil || later == first || later == 0 {
		t.Errorf("after the minute: lease %x %v, want a new one", later, err)
	}
}

// TestTooLarge: a write over etcd's request limit (1.5 MiB) is ErrTooLarge,
// whether etcd refuses it or, past the limit plus gRPC's 512 KiB, gRPC
// does; in process and over gRPC alike. Nothing is written.
func TestTooLarge(t *testing.T) {
	e, c := testenv.Etcd(t)
	ctx := context.Background()
	for name, s := range map[string]*storage.Store{"grpc": storage.New(c), "in process": storage.NewWithKV(c, e.KV())} {
		for _, size := range []int{1600 << 10, 2500 << 10} {
			key := storage.Key("configmaps", "default", fmt.Sprintf("big-%d", size))
			if _, err := s.Create(ctx, key, make([]byte, size)); !errors.Is(err, storage.ErrTooLarge) {
				t.Errorf("%s: create of %d bytes: %v, want ErrTooLarge", name, size, err)
			}
			if _, err := s.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: get after the refused create: %v", name, err)
			}
			rev, err := s.Create(ctx, key, []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Update(ctx, key, make([]byte, size), rev, 0); !errors.Is(err, storage.ErrTooLarge) {
				t.Errorf("%s: update to %d bytes: %v, want ErrTooLarge", name, size, err)
			}
			if _, err := s.Delete(ctx, key, rev); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestClaims: keys taken and released in an object's own transaction, a
// taken key refused to another writer, a release that leaves a key held
// by someone else alone.
func TestClaims(t *testing.T) {
	_, c := testenv.Etcd(t)
	s := storage.New(c)
	ctx := context.Background()
	a, b := storage.Key("services", "default", "a"), storage.Key("services", "default", "b")
	ip1, ip2, port := "/claims/ip/10.0.0.1", "/claims/ip/10.0.0.2", "/claims/port/30000"
	held := func(key, owner string) {
		t.Helper()
		resp, err := c.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if len(resp.Kvs) > 0 {
			got = string(resp.Kvs[0].Value)
		}
		if got != owner {
			t.Fatalf("%s held by %q, want %q", key, got, owner)
		}
	}
	ra, err := s.CreateClaiming(ctx, a, []byte(`{"a":1}`), "", 0, storage.Claims{Take: []string{ip1, port}, Owner: "a"})
	if err != nil {
		t.Fatal(err)
	}
	held(ip1, "a")
	held(port, "a")
	var claimed *storage.ClaimedError
	if _, err := s.CreateClaiming(ctx, b, []byte(`{}`), "", 0, storage.Claims{Take: []string{ip2, port}, Owner: "b"}); !errors.As(err, &claimed) || claimed.Key != port {
		t.Fatalf("create taking a held key: %v", err)
	}
	if _, err := s.Get(ctx, b); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("refused create stored its object: %v", err)
	}
	held(ip2, "")
	// An update moves a's claim from ip1 to ip2; a stale one changes nothing.
	if _, err := s.UpdateClaiming(ctx, a, []byte(`{"a":2}`), ra-1, 0, storage.Claims{Take: []string{ip2}, Release: []string{ip1}, Owner: "a"}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	held(ip1, "a")
	ra, err = s.UpdateClaiming(ctx, a, []byte(`{"a":2}`), ra, 0, storage.Claims{Take: []string{ip2}, Release: []string{ip1}, Owner: "a"})
	if err != nil {
		t.Fatal(err)
	}
	held(ip1, "")
	held(ip2, "a")
	rb, err := s.CreateClaiming(ctx, b, []byte(`{}`), "", 0, storage.Claims{Take: []string{ip1}, Owner: "b"})
	if err != nil {
		t.Fatal(err)
	}
	// a releasing what b holds leaves it to b.
	if _, err := s.DeleteReleasing(ctx, a, ra, storage.Claims{Release: []string{ip2, port, ip1}, Owner: "a"}); err != nil {
		t.Fatal(err)
	}
	held(ip2, "")
	held(port, "")
	held(ip1, "b")
	if _, err := s.UpdateClaiming(ctx, b, []byte(`{"b":1}`), rb, 0, storage.Claims{Take: []string{ip1}, Owner: "b"}); !errors.As(err, &claimed) || claimed.Key != ip1 {
		t.Fatalf("update taking a key already held: %v", err)
	}
}
