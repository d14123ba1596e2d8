package testenv

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer safe for a writer goroutine (a child process's
// output, a command running in the background) and a reading test.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
