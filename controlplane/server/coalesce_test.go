package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the write calls that reach the connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// coalescingPipe returns a coalescingConn over one end of a net.Pipe (whose
// writes wait for the reader), that end's write counter, and the other end.
func coalescingPipe(t *testing.T) (*coalescingConn, *countingConn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	inner := &countingConn{Conn: a}
	l := coalescingListener{&oneConnListener{c: inner}}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return c.(*coalescingConn), inner, b
}

type oneConnListener struct {
	net.Listener
	c net.Conn
}

func (l *oneConnListener) Accept() (net.Conn, error) { return l.c, nil }

// TestCoalescingConnKeepsEveryWriteWhole: concurrent writers over loopback
// TCP; the peer gets every write whole, each writer's in its order, then
// EOF after Close.
func TestCoalescingConnKeepsEveryWriteWhole(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl := coalescingListener{ln}
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := cl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 3000
	var wg sync.WaitGroup
	line := func(w, i int) string {
		// Lines of varying length, some as long as the whole queue.
		if i%1000 == 999 {
			return fmt.Sprintf("%d %d %s\n", w, i, strings.Repeat("y", maxQueued))
		}
		return fmt.Sprintf("%d %d %s\n", w, i, strings.Repeat("x", (i*37)%2000))
	}
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := c.Write([]byte(line(w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan error, 1)
	go func() {
		next := make([]int, writers)
		r := bufio.NewReaderSize(peer, 1<<20)
		for {
			l, err := r.ReadString('\n')
			if err == io.EOF && l == "" {
				for w, n := range next {
					if n != each {
						done <- fmt.Errorf("writer %d: %d of %d lines", w, n, each)
						return
					}
				}
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
			var w, i int
			if _, err := fmt.Sscan(l, &w, &i); err != nil || w < 0 || w >= writers {
				done <- fmt.Errorf("line %.40q: %v", l, err)
				return
			}
			if i != next[w] || l != line(w, i) {
				done <- fmt.Errorf("writer %d: line %d (%d bytes) after %d", w, i, len(l), next[w]-1)
				return
			}
			next[w]++
		}
	}()
	go func() {
		wg.Wait()
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the peer did not get everything")
	}
}

// TestCoalescingConnWritesTheQueueAtOnce: what is written while the
// connection is busy goes out in one write call.
func TestCoalescingConnWritesTheQueueAtOnce(t *testing.T) {
	c, inner, peer := coalescingPipe(t)
	// The first write call waits in the pipe until the peer reads.
	if _, err := c.Write([]byte("first.")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return inner.writes.Load() == 1 })
	for range 100 {
		if _, err := c.Write([]byte("more.")); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, len("first.")+100*len("more."))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	if want := "first." + strings.Repeat("more.", 100); string(got) != want {
		t.Fatalf("peer got %q", got)
	}
	if n := inner.writes.Load(); n != 2 {
		t.Errorf("%d write calls, want 2", n)
	}
}

// TestCoalescingConnCloseSendsTheQueue: Close waits for what is queued to
// be read, then closes.
func TestCoalescingConnCloseSendsTheQueue(t *testing.T) {
	c, _, peer := coalescingPipe(t)
	for range 10 {
		c.Write([]byte("data."))
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != strings.Repeat("data.", 10) {
		t.Fatalf("peer got %q", got)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("late")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

// TestCoalescingConnCloseGivesUpOnAPeerThatDoesNotRead: Close returns
// after closeFlushTimeout, and a Write waiting for room fails.
func TestCoalescingConnCloseGivesUpOnAPeerThatDoesNotRead(t *testing.T) {
	c, _, _ := coalescingPipe(t)
	blocked := make(chan error, 1)
	go func() {
		// The writer takes the first and waits in the pipe, the second
		// fills the queue, the third waits for room.
		for _, n := range []int{maxQueued, maxQueued, 1} {
			if _, err := c.Write(make([]byte, n)); err != nil {
				blocked <- err
				return
			}
		}
		blocked <- nil
	}()
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queued) == maxQueued
	})
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > closeFlushTimeout+2*time.Second {
		t.Errorf("Close took %s", d)
	}
	select {
	case err := <-blocked:
		if err == nil {
			t.Error("the waiting Write succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting Write still waits")
	}
}

// TestCoalescingConnReportsAFailedWrite: once the peer is gone, Write says
// so.
func TestCoalescingConnReportsAFailedWrite(t *testing.T) {
	c, _, peer := coalescingPipe(t)
	peer.Close()
	c.Write([]byte("lost"))
	waitFor(t, func() bool {
		_, err := c.Write([]byte("x"))
		return err != nil
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
	}
}
