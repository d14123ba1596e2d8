// Package gctune sets the garbage collector's GOGC after every collection
// from the live heap it found, so that a small heap is collected less
// often than a fixed GOGC would have it.
//
// Marking costs in proportion to the live heap, and at a fixed GOGC a
// collection comes once per GOGC% of it allocated: collecting takes the
// same CPU at any heap size, and only a larger GOGC makes it cheaper. What
// a memory budget allows, though, is a headroom in bytes, which is a large
// GOGC for a small heap. Start lets the heap grow by a headroom over its
// live data, as a GOGC between a floor (what a large heap gets) and a
// ceiling (the most a small heap grows relative to itself).
package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Percent is the GOGC that lets a heap of live bytes grow by headroom
// bytes, kept between floor and ceiling.
func Percent(live, headroom uint64, floor, ceiling int) int {
	if live == 0 {
		return ceiling
	}
	return int(max(uint64(floor), min(uint64(ceiling), headroom*100/live)))
}

// Start sets GOGC to Percent(live heap, headroom, floor, ceiling) at once
// and after every collection, for the life of the process. Call it once.
func Start(headroom uint64, floor, ceiling int) {
	start(&tuner{headroom: headroom, floor: floor, ceiling: ceiling, live: liveHeap})
}

func start(t *tuner) {
	t.current = -1
	t.adjust()
	t.arm()
}

type tuner struct {
	headroom       uint64
	floor, ceiling int
	live           func() uint64 // the live heap of the last collection
	current        int           // the GOGC set last
	stopped        atomic.Bool   // for tests: no more adjustments
}

// sentinel is allocated for the next collection, whose cleanups run once
// it has found it unreachable. It is too large for the tiny allocator,
// whose objects' cleanups may never run.
type sentinel struct{ _ [32]byte }

// arm has adjust run after the next collection, and arm again. Cleanups
// run one at a time on the runtime's cleanup goroutine, so t needs no lock.
func (t *tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *tuner) {
		if t.stopped.Load() {
			return
		}
		t.adjust()
		t.arm()
	}, t)
}

func (t *tuner) adjust() {
	if p := Percent(t.live(), t.headroom, t.floor, t.ceiling); p != t.current {
		debug.SetGCPercent(p)
		t.current = p
	}
}

func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
