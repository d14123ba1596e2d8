package apiserver

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// objCache follows one resource in etcd and keeps what
// admission needs of each object (from keep; objects it maps to nil are
// left out), so that creates need not read etcd, as Kubernetes' admission
// plugins use informers.
//
// The cache knows only once it is synced and has seen every change this
// server wrote (wrote): a request that follows a write of its client's
// sees it, as if read from etcd; other servers' writes reach it with the
// watch's lag, as they reach kube-apiserver's informers.
type objCache[T any] struct {
	keep func(value []byte) *T
	// written is the revision of this server's last write to the resource.
	written atomic.Int64

	mu     sync.RWMutex
	synced bool
	rev    int64 // the cache has every change up to rev
	objs   map[string]*T
}

// knows reports whether the cache is synced and has every change this
// server wrote. Call it with c.mu held.
func (c *objCache[T]) knows() bool { return c.synced && c.rev >= c.written.Load() }

// wrote records that this server wrote the resource at rev.
func (c *objCache[T]) wrote(rev int64) {
	for {
		w := c.written.Load()
		if rev <= w || c.written.CompareAndSwap(w, rev) {
			return
		}
	}
}

// lookup returns what is kept of name, and whether the cache knows.
func (c *objCache[T]) lookup(name string) (obj *T, known bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.objs[name], c.knows()
}

// prefixed returns what is kept of the objects whose names (namespace/name
// for a namespaced resource) start with prefix, in the names' order, and
// whether the cache knows.
func (c *objCache[T]) prefixed(prefix string) (objs []*T, known bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	names := make([]string, 0, len(c.objs))
	for name := range c.objs {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		objs = append(objs, c.objs[name])
	}
	return objs, c.knows()
}

// list returns what is kept of resource's objects in namespace ns (all
// when ""), in their names' order: from the cache when it knows, else
// from etcd.
func (c *objCache[T]) list(ctx context.Context, store *storage.Store, resource, ns string) ([]*T, error) {
	prefix := ""
	if ns != "" {
		prefix = ns + "/"
	}
	if objs, known := c.prefixed(prefix); known {
		return objs, nil
	}
	page, err := store.List(ctx, storage.Prefix(resource, ns), storage.ListOptions{})
	if err != nil {
		return nil, err
	}
	var objs []*T
	for _, o := range page.Items {
		if obj := c.keep(o.Value); obj != nil {
			objs = append(objs, obj)
		}
	}
	return objs, nil
}

func (c *objCache[T]) set(synced bool, rev int64, objs map[string]*T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.synced, c.rev, c.objs = synced, rev, objs
}

func (c *objCache[T]) update(name string, rev int64, value []byte, deleted bool) {
	var obj *T
	if !deleted {
		obj = c.keep(value)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.objs == nil {
		return // not following etcd
	}
	c.rev = rev
	if obj != nil {
		c.objs[name] = obj
	} else {
		delete(c.objs, name)
	}
}

// follow lists resource and then watches it into c until ctx ends or the
// watch fails. The cache is filled before it is published: a lookup never
// sees a synced cache that misses an object.
func (c *objCache[T]) follow(ctx context.Context, store *storage.Store, resource string) error {
	prefix := storage.Prefix(resource, "")
	page, err := store.List(ctx, prefix, storage.ListOptions{})
	if err != nil {
		return err
	}
	objs := map[string]*T{}
	for _, so := range page.Items {
		if obj := c.keep(so.Value); obj != nil {
			objs[so.Key[len(prefix):]] = obj
		}
	}
	c.set(true, page.Rev, objs)
	events, errc := store.Watch(ctx, prefix, page.Rev+1)
	for ev := range events {
		c.update(ev.Object.Key[len(prefix):], ev.Object.Rev, ev.Object.Value, ev.Type == storage.Deleted)
	}
	return <-errc
}

// terminating keeps the namespaces being deleted.
func terminating(value []byte) *struct{} {
	var ns corev1.Namespace
	if json.Unmarshal(value, &ns) == nil && (ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating) {
		return &struct{}{}
	}
	return nil
}

// runtimeClass keeps runtime classes whole, for the pods' admission.
func runtimeClass(value []byte) *nodev1.RuntimeClass {
	rc := &nodev1.RuntimeClass{}
	if json.Unmarshal(value, rc) != nil {
		return nil
	}
	return rc
}

// Run keeps the server's caches in step with etcd until ctx ends. Without
// it the server still works, reading etcd instead.
func (s *Server) Run(ctx context.Context) error {
	defer s.watches.Close()
	var wg sync.WaitGroup
	wg.Go(func() { keepFollowing(ctx, s, &s.namespaces, "namespaces") })
	wg.Go(func() { keepFollowing(ctx, s, &s.runtimeClasses, "runtimeclasses") })
	wg.Go(func() { keepFollowing(ctx, s, &s.limitRanges, "limitranges") })
	wg.Go(func() { keepFollowing(ctx, s, &s.priorityClasses, "priorityclasses") })
	wg.Go(func() { keepFollowing(ctx, s, &s.resourceQuotas, "resourcequotas") })
	wg.Go(func() { s.keepRepairingClaims(ctx) })
	wg.Wait()
	return nil
}

func keepFollowing[T any](ctx context.Context, s *Server, c *objCache[T], resource string) {
	for ctx.Err() == nil {
		err := c.follow(ctx, s.store, resource)
		c.set(false, 0, nil)
		if ctx.Err() == nil {
			s.log.Warn("cache of "+resource+": resyncing", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// wrote tells the cache of resource, if the server keeps one, that the
// server wrote it at rev.
func (s *Server) wrote(resource string, rev int64) {
	switch resource {
	case "namespaces":
		s.namespaces.wrote(rev)
	case "runtimeclasses":
		s.runtimeClasses.wrote(rev)
	case "limitranges":
		s.limitRanges.wrote(rev)
	case "priorityclasses":
		s.priorityClasses.wrote(rev)
	case "resourcequotas":
		s.resourceQuotas.wrote(rev)
	}
}
