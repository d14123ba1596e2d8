package server

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// coalescingListener hands out connections whose writes are coalesced (see
// coalescingConn). The API server's TLS runs over them.
type coalescingListener struct{ net.Listener }

func (l coalescingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &coalescingConn{Conn: c}
	cc.cond.L = &cc.mu
	return cc, nil
}

const (
	// maxQueued bounds what a coalescingConn holds for its peer: a Write
	// beyond it waits, as it would for a full socket buffer.
	maxQueued = 256 << 10
	// keptBuffer is the largest buffer a connection keeps between batches.
	keptBuffer = 64 << 10
	// closeFlushTimeout bounds how long Close sends what is queued to a
	// peer that does not read.
	closeFlushTimeout = time.Second
)

// coalescingConn writes in a goroutine of its own: Write queues the bytes
// and returns, and the writer sends all that is queued by the time it runs
// in one write call. Go's HTTP/2 server flushes each response's HEADERS
// frame on its own, then its DATA frame, one at a time: over TLS, each
// flush is a record and a system call on both ends. Queued, the flushes of
// many streams go out together: at 32 clients sharing a connection the
// server's write calls per pod create fell from 2.2 to 1.0 (etcd's WAL
// writes included), and both ends spend less CPU on each request
// (BENCHMARKS.md).
//
// Once a write failed (a write deadline passed, the peer went away), the
// next Write returns its error. Close sends what is queued first, for at
// most closeFlushTimeout.
type coalescingConn struct {
	net.Conn

	mu      sync.Mutex
	cond    sync.Cond // on mu: the queue was taken, or the writer stopped
	queued  []byte
	spare   []byte
	writing bool // the writer goroutine runs
	err     error
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && len(c.queued) > 0 && len(c.queued)+len(p) > maxQueued {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	c.queued = append(c.queued, p...)
	if !c.writing {
		c.writing = true
		go c.writeQueued()
	}
	return len(p), nil
}

// writeQueued writes the queue until it is empty or a write fails.
func (c *coalescingConn) writeQueued() {
	// Let the goroutines that are about to write (the HTTP/2 server's
	// serve loop, the handlers) add to the batch.
	runtime.Gosched()
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queued) > 0 && c.err == nil {
		b := c.queued
		c.queued = c.spare[:0]
		c.cond.Broadcast()
		c.mu.Unlock()
		_, err := c.Conn.Write(b)
		c.mu.Lock()
		if err != nil {
			c.err = err
		}
		c.spare = b[:0]
	}
	if cap(c.queued) > keptBuffer {
		c.queued = nil
	}
	if cap(c.spare) > keptBuffer {
		c.spare = nil
	}
	c.writing = false
	c.cond.Broadcast()
}

// Close sends what is queued, then closes the connection.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	if c.writing && c.err == nil {
		c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		for c.writing && c.err == nil {
			c.cond.Wait()
		}
	}
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	return c.Conn.Close()
}
