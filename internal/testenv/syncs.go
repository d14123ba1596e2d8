package testenv

import (
	"sync"
	"testing"
	"time"
)

// Syncs records, per key, the clock time read by a controller's latest
// finished sync, so that a test driving a fake clock can wait for the sync
// at a time. Create it with NewSyncs; Synced is the controller's hook.
type Syncs struct {
	mu     sync.Mutex
	cond   *sync.Cond
	lastAt map[string]time.Time
}

// NewSyncs returns an empty Syncs.
func NewSyncs() *Syncs {
	s := &Syncs{lastAt: map[string]time.Time{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Synced records a finished sync of key that read now from the clock.
func (s *Syncs) Synced(key string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.After(s.lastAt[key]) {
		s.lastAt[key] = now
	}
	s.cond.Broadcast()
}

// Wait waits up to timeout for a sync of key that read at (or later) from
// the clock, failing the test without one.
func (s *Syncs) Wait(t testing.TB, key string, at time.Time, timeout time.Duration) {
	t.Helper()
	wake := time.AfterFunc(timeout, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer wake.Stop()
	limit := time.Now().Add(timeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.lastAt[key].Before(at) {
		if time.Now().After(limit) {
			t.Fatalf("no sync of %s at %s (last at %s)", key, at, s.lastAt[key])
		}
		s.cond.Wait()
	}
}
