package apiserver

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// objCache follows one cluster-scoped resource in etcd and keeps what
// admission needs of each object (from keep; objects it maps to nil are
// left out), so that creates need not read etcd, as Kubernetes' admission
// plugins use informers.
type objCache[T any] struct {
	keep func(value []byte) *T

	mu     sync.RWMutex
	synced bool
	objs   map[string]*T
}

// lookup returns what is kept of name, and whether the cache knows.
func (c *objCache[T]) lookup(name string) (obj *T, known bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.objs[name], c.synced
}

func (c *objCache[T]) set(synced bool, objs map[string]*T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.synced, c.objs = synced, objs
}

func (c *objCache[T]) update(name string, value []byte, deleted bool) {
	var obj *T
	if !deleted {
		obj = c.keep(value)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.objs == nil {
		return // not following etcd
	}
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
	c.set(true, objs)
	events, errc := store.Watch(ctx, prefix, page.Rev+1)
	for ev := range events {
		c.update(ev.Object.Key[len(prefix):], ev.Object.Value, ev.Type == storage.Deleted)
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
	wg.Wait()
	return nil
}

func keepFollowing[T any](ctx context.Context, s *Server, c *objCache[T], resource string) {
	for ctx.Err() == nil {
		err := c.follow(ctx, s.store, resource)
		c.set(false, nil)
		if ctx.Err() == nil {
			s.log.Warn("cache of "+resource+": resyncing", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}
