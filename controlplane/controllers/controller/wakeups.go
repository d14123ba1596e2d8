package controller

import (
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// Wakeups queues keys on a Queue at later times of a clock (injectable, so
// tests need not wait for real time to pass), as the delaying workqueue of
// Kubernetes' controllers does: per key only the earliest wake-up armed
// holds, so a sync that read an object before it changed cannot put off
// the wake-up the change asked for. Safe for concurrent use.
type Wakeups struct {
	clock clock.WithDelayedExecution
	queue *Queue

	mu      sync.Mutex
	timers  map[string]wakeUp
	stopped bool
}

// wakeUp is a timer that queues a key at a time; fired is set when it has.
type wakeUp struct {
	timer clock.Timer
	at    time.Time
	fired *atomic.Bool
}

// NewWakeups returns wake-ups on clk (nil: the real clock) that queue keys
// on q.
func NewWakeups(clk clock.WithDelayedExecution, q *Queue) *Wakeups {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Wakeups{clock: clk, queue: q, timers: map[string]wakeUp{}}
}

// After queues key after d on the clock, unless an earlier wake-up that
// has not fired is armed for it. The timer's callback takes no lock of
// Wakeups': the fake clock of tests calls it with its own lock held, which
// AfterFunc takes.
func (w *Wakeups) After(key string, d time.Duration) {
	at := w.clock.Now().Add(d)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if cur, ok := w.timers[key]; ok {
		if !cur.fired.Load() && !cur.at.After(at) {
			return
		}
		cur.timer.Stop()
	}
	fired := new(atomic.Bool)
	t := w.clock.AfterFunc(d, func() {
		fired.Store(true)
		w.queue.Add(key)
	})
	w.timers[key] = wakeUp{timer: t, at: at, fired: fired}
}

// Forget stops key's wake-up, if one is armed (its object is gone).
func (w *Wakeups) Forget(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur, ok := w.timers[key]; ok {
		cur.timer.Stop()
		delete(w.timers, key)
	}
}

// Stop stops every wake-up armed and arms no more (the controller's Run
// has ended).
func (w *Wakeups) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	for key, cur := range w.timers {
		cur.timer.Stop()
		delete(w.timers, key)
	}
}
