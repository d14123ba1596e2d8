package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		live, headroom uint64
		want           int
	}{
		{0, 128 * mib, 400},         // nothing live yet: the ceiling
		{16 * mib, 128 * mib, 400},  // 800% would fit: the ceiling
		{40 * mib, 128 * mib, 320},  // the headroom
		{64 * mib, 128 * mib, 200},  // the headroom, the floor
		{500 * mib, 128 * mib, 200}, // a large heap: the floor
		{1 << 40, 1 << 40, 200},     // no overflow
		{1, 1 << 50, 400},           // no overflow
	}
	for _, c := range cases {
		if got := Percent(c.live, c.headroom, 200, 400); got != c.want {
			t.Errorf("Percent(%d, %d, 200, 400) = %d, want %d", c.live, c.headroom, got, c.want)
		}
	}
}

// TestStartFollowsCollections sets GOGC from a live heap the test chooses,
// and checks that GOGC follows it after the next collections.
func TestStartFollowsCollections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	var live atomic.Uint64
	live.Store(10 << 20)
	tu := &tuner{headroom: 100 << 20, floor: 150, ceiling: 500, live: func() uint64 { return live.Load() }}
	start(tu)
	defer tu.stopped.Store(true)
	if got := gogc(); got != 500 {
		t.Fatalf("GOGC after Start = %d, want the ceiling 500", got)
	}
	for _, c := range []struct {
		live uint64
		want int
	}{{1 << 30, 150}, {40 << 20, 250}} {
		live.Store(c.live)
		deadline := time.Now().Add(10 * time.Second)
		for gogc() != c.want {
			if time.Now().After(deadline) {
				t.Fatalf("live heap %d: GOGC %d, want %d after collections", c.live, gogc(), c.want)
			}
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}
}

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}
