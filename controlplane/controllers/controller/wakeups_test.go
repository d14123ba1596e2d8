package controller

import (
	"context"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// TestWakeupsKeepTheEarliest: as the delaying workqueue of Kubernetes'
// controllers, the earliest armed wake-up of a key holds: a sync that read
// an object before it changed (a CronJob before its schedule changed, so
// asking for the old schedule's later time) cannot put off the wake-up of
// the change. Once it has fired, the next one is armed whatever its time.
func TestWakeupsKeepTheEarliest(t *testing.T) {
	start := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	q := NewQueue("test", nil, func(context.Context, string) error { return nil })
	w := NewWakeups(clk, q)
	at := func() time.Duration { return w.timers["ns/cj"].at.Sub(start) }
	w.After("ns/cj", 5*time.Minute) // the new schedule's
	w.After("ns/cj", time.Hour)     // a stale sync's
	if at() != 5*time.Minute {
		t.Fatalf("armed for %v, want 5m", at())
	}
	w.After("ns/cj", time.Minute)
	if at() != time.Minute {
		t.Fatalf("armed for %v, want the earlier 1m", at())
	}
	clk.Step(time.Minute)
	if q.Len() != 1 {
		t.Fatalf("queue has %d keys after the wake-up, want 1", q.Len())
	}
	w.After("ns/cj", time.Hour)
	if at() != time.Minute+time.Hour {
		t.Fatalf("armed for %v after the wake-up fired, want 1h from then", at())
	}
	w.Forget("ns/cj")
	w.Stop()
	w.After("ns/cj", time.Second)
	if len(w.timers) != 0 || clk.HasWaiters() {
		t.Fatalf("wake-up armed after Stop: %v", w.timers)
	}
}
