package apiserver

import (
	"context"
	"time"
)

// SetBookmarkInterval sets how often s sends watch bookmarks (a minute
// unless set), so that tests need not wait for them.
func SetBookmarkInterval(s *Server, d time.Duration) { s.bookmarkEvery.Store(int64(d)) }

// GenerateNameAttempts is how many names a create with generateName tries.
const GenerateNameAttempts = generateNameAttempts

// RepairClaims runs one repair of the Services' claims now.
func RepairClaims(ctx context.Context, s *Server) error { return s.repairClaims(ctx) }
