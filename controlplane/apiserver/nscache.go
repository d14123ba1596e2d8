package apiserver

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// nsCache follows the namespaces in etcd, so that creates can refuse a
// terminating namespace without reading it (Kubernetes' admission uses an
// informer the same way).
type nsCache struct {
	mu          sync.RWMutex
	synced      bool
	terminating map[string]bool
}

// lookup reports whether ns is terminating, and whether the cache knows.
func (c *nsCache) lookup(ns string) (terminating, known bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.terminating[ns], c.synced
}

func (c *nsCache) set(synced bool, terminating map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.synced, c.terminating = synced, terminating
}

// nsTerminating says whether the stored namespace value is terminating.
func nsTerminating(value []byte) bool {
	var ns corev1.Namespace
	return json.Unmarshal(value, &ns) == nil && (ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating)
}

func (c *nsCache) update(name string, value []byte, deleted bool) {
	term := !deleted && nsTerminating(value)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.terminating == nil {
		return // not following etcd
	}
	if term {
		c.terminating[name] = true
	} else {
		delete(c.terminating, name)
	}
}

// Run keeps the server's caches in step with etcd until ctx ends. Without
// it the server still works, reading etcd instead.
func (s *Server) Run(ctx context.Context) error {
	defer s.watches.Close()
	for ctx.Err() == nil {
		err := s.followNamespaces(ctx)
		s.namespaces.set(false, nil)
		if ctx.Err() == nil {
			s.log.Warn("namespace cache: resyncing", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

func (s *Server) followNamespaces(ctx context.Context) error {
	prefix := storage.Prefix("namespaces", "")
	page, err := s.store.List(ctx, prefix, storage.ListOptions{})
	if err != nil {
		return err
	}
	// Filled before it is published: a lookup never sees a synced cache
	// that misses a terminating namespace.
	terminating := map[string]bool{}
	for _, so := range page.Items {
		if nsTerminating(so.Value) {
			terminating[so.Key[len(prefix):]] = true
		}
	}
	s.namespaces.set(true, terminating)
	events, errc := s.store.Watch(ctx, prefix, page.Rev+1)
	for ev := range events {
		s.namespaces.update(ev.Object.Key[len(prefix):], ev.Object.Value, ev.Type == storage.Deleted)
	}
	return <-errc
}
