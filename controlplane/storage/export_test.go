package storage

import "time"

// SetStallTimeout sets how long a watcher on a watch of its own may leave
// its channel full before its watch ends (stallTimeout unless set).
func SetStallTimeout(c *WatchCache, d time.Duration) { c.stallTimeout = d }

// HasFeed reports whether c has a feed for root.
func HasFeed(c *WatchCache, root string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.feeds[root] != nil
}

// SetLeaseClock sets the clock by which s reuses a lease for a minute.
func SetLeaseClock(s *Store, now func() time.Time) { s.leases.now = now }
