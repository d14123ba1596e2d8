package storage

import "time"

// SetStallTimeout sets how long a watcher on a watch of its own may leave
// its channel full before its watch ends (stallTimeout unless set).
func SetStallTimeout(c *WatchCache, d time.Duration) { c.stallTimeout = d }
