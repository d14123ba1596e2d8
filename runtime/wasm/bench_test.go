package wasm_test

import (
	"context"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/wasm"
)

// BenchmarkHelloStart measures starting examples/hello (HELLO_COUNT=1: Go's
// runtime starts, one line is printed, the guest exits) through this
// package and through raw wazero configured the same way (compiler where
// available, WithCloseOnContextDone, real clocks), in two situations:
//
//   - compiled: the module is already compiled in this runtime (a pod of a
//     module that other pods on the node run);
//   - warm-cache-new-runtime: each iteration creates a new runtime reading a
//     warm compilation cache directory, as an agent does after a restart,
//     and closes it afterwards.
//
// raw-wazero/instantiate-only instantiates without calling _start: raw
// wazero's floor, which this package's starts go below by merging the data
// segments and mapping them from a memory image instead of copying them.
func BenchmarkHelloStart(b *testing.B) {
	ctx := context.Background()
	m := goGuest(b, "hello")
	bin, err := os.ReadFile(m.Path)
	if err != nil {
		b.Fatal(err)
	}
	cacheDir := b.TempDir()
	warm, err := wasm.New(ctx, wasm.Config{CacheDir: cacheDir})
	if err != nil {
		b.Fatal(err)
	}
	if err := warm.Prepare(ctx, m); err != nil {
		b.Fatal(err)
	}
	if err := warm.Close(ctx); err != nil {
		b.Fatal(err)
	}
	spec := runtime.ContainerSpec{ID: "hello", Module: m, Args: []string{"hello"}, Env: env("HELLO_COUNT", "1")}
	rawConfig := func() wazero.ModuleConfig {
		return wazero.NewModuleConfig().WithName("").WithArgs("hello").WithEnv("HELLO_COUNT", "1").
			WithStdout(io.Discard).WithStderr(io.Discard).WithSysWalltime().WithSysNanotime().WithSysNanosleep()
	}
	rawRuntime := func(b *testing.B) (wazero.Runtime, wazero.CompilationCache) {
		cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
		if err != nil {
			b.Fatal(err)
		}
		wr := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true).WithCompilationCache(cache))
		wasi_snapshot_preview1.MustInstantiate(ctx, wr)
		return wr, cache
	}

	b.Run("raw-wazero/compiled", func(b *testing.B) {
		wr, cache := rawRuntime(b)
		defer cache.Close(ctx)
		defer wr.Close(ctx)
		compiled, err := wr.CompileModule(ctx, bin)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := wr.InstantiateModule(ctx, compiled, rawConfig()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-wazero/instantiate-only", func(b *testing.B) {
		wr, cache := rawRuntime(b)
		defer cache.Close(ctx)
		defer wr.Close(ctx)
		compiled, err := wr.CompileModule(ctx, bin)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			mod, err := wr.InstantiateModule(ctx, compiled, rawConfig().WithStartFunctions())
			if err != nil {
				b.Fatal(err)
			}
			mod.Close(ctx)
		}
	})
	b.Run("wasmfleet/compiled", func(b *testing.B) {
		r := newRuntime(b, wasm.Config{CacheDir: cacheDir})
		if err := r.Prepare(ctx, m); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			benchRun(b, r, spec)
		}
	})
	b.Run("raw-wazero/warm-cache-new-runtime", func(b *testing.B) {
		for b.Loop() {
			wr, cache := rawRuntime(b)
			compiled, err := wr.CompileModule(ctx, bin)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := wr.InstantiateModule(ctx, compiled, rawConfig()); err != nil {
				b.Fatal(err)
			}
			wr.Close(ctx)
			cache.Close(ctx)
		}
	})
	b.Run("wasmfleet/warm-cache-new-runtime", func(b *testing.B) {
		for b.Loop() {
			r, err := wasm.New(ctx, wasm.Config{CacheDir: cacheDir})
			if err != nil {
				b.Fatal(err)
			}
			benchRun(b, r, spec)
			if err := r.Close(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchRun(b *testing.B, r runtime.Runtime, spec runtime.ContainerSpec) {
	c, err := r.Start(context.Background(), spec)
	if err != nil {
		b.Fatal(err)
	}
	<-c.Done()
	if st, _ := c.Exit(); st.Reason != runtime.ReasonCompleted {
		b.Fatalf("exit %+v", st)
	}
}

// BenchmarkTinyInstances starts 1,000 instances of examples/tiny, waits until
// each has printed its line (it is then asleep in poll_oneoff), measures the
// memory they hold and stops them. ns/op is the time to start all 1,000.
// Metrics per instance: heap+stack-B is the growth of the Go heap and stacks
// (on unix without the guest's 64 KiB page of linear memory, which is
// mapped outside the Go heap), rss-B the growth of the process's resident
// set in the first round (later rounds reuse memory the first one freed;
// with -count > 1 only the first run's rss-B means anything). The untouched
// part of each guest's page is not resident.
func BenchmarkTinyInstances(b *testing.B) {
	const n = 1000
	ctx := context.Background()
	r := newRuntime(b, wasm.Config{})
	m := tinyModule(b)
	if err := r.Prepare(ctx, m); err != nil {
		b.Fatal(err)
	}
	cs := make([]runtime.Container, n)
	var heapPer, rssPer float64
	first := true
	for b.Loop() {
		b.StopTimer()
		heap0, rss0 := memNow(b)
		up := &upCounter{want: n, all: make(chan struct{})}
		b.StartTimer()
		for i := range cs {
			c, err := r.Start(ctx, runtime.ContainerSpec{ID: strconv.Itoa(i), Module: m, Stdout: up, MemoryLimit: 1 << 20})
			if err != nil {
				b.Fatal(err)
			}
			cs[i] = c
		}
		<-up.all
		b.StopTimer()
		heap1, rss1 := memNow(b)
		heapPer = float64(heap1-heap0) / n
		if first {
			rssPer = (float64(rss1) - float64(rss0)) / n
			first = false
		}
		for _, c := range cs {
			_ = c.Stop(0)
		}
		for _, c := range cs {
			<-c.Done()
		}
		b.StartTimer()
	}
	b.ReportMetric(heapPer, "heap+stack-B/instance")
	b.ReportMetric(rssPer, "rss-B/instance")
}

// upCounter closes all once want writes (one line per tiny instance) came.
type upCounter struct {
	n, want int64
	all     chan struct{}
}

func (u *upCounter) Write(p []byte) (int, error) {
	if atomic.AddInt64(&u.n, 1) == u.want {
		close(u.all)
	}
	return len(p), nil
}

// memNow returns the live Go heap plus stacks after a GC, and the process's
// resident set size (0 where /proc is missing).
func memNow(b *testing.B) (heapAndStack, rss uint64) {
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	if s, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(s), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				var kb uint64
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
					rss = kb << 10
				}
			}
		}
	}
	return ms.HeapAlloc + ms.StackInuse, rss
}

// BenchmarkCloseOnContextDoneCost runs CPU-bound Go code (examples/job, π to
// 3,000 places with math/big) in raw wazero with and without
// WithCloseOnContextDone, which this package always enables so that Stop
// can end any guest: it shows what the termination checks in every loop and
// call cost such guests.
func BenchmarkCloseOnContextDoneCost(b *testing.B) {
	ctx := context.Background()
	bin, err := os.ReadFile(goGuest(b, "job").Path)
	if err != nil {
		b.Fatal(err)
	}
	for _, ensure := range []bool{false, true} {
		b.Run(fmt.Sprintf("close-on-context-done=%v", ensure), func(b *testing.B) {
			wr := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(ensure))
			defer wr.Close(ctx)
			wasi_snapshot_preview1.MustInstantiate(ctx, wr)
			compiled, err := wr.CompileModule(ctx, bin)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				cfg := wazero.NewModuleConfig().WithName("").WithArgs("pi", "-digits", "3000").
					WithStdout(io.Discard).WithSysWalltime().WithSysNanotime()
				if _, err := wr.InstantiateModule(ctx, compiled, cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStopSleepingGuests starts 200 hello guests, waits until each has
// printed its first line (it then sleeps in poll_oneoff), and stops them all
// at once, as an agent shutting down or a drained node does. ns/op is the
// time from the first Stop until the last guest has ended; cpu-ms/op is the
// process's CPU time (user + system) meanwhile.
func BenchmarkStopSleepingGuests(b *testing.B) {
	const n = 200
	ctx := context.Background()
	r := newRuntime(b, wasm.Config{})
	m := goGuest(b, "hello")
	if err := r.Prepare(ctx, m); err != nil {
		b.Fatal(err)
	}
	cs := make([]runtime.Container, n)
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		up := &upCounter{want: n, all: make(chan struct{})}
		for i := range cs {
			c, err := r.Start(ctx, runtime.ContainerSpec{ID: strconv.Itoa(i), Module: m, Args: []string{"hello"}, Stdout: up})
			if err != nil {
				b.Fatal(err)
			}
			cs[i] = c
		}
		<-up.all
		cpu0 := processCPU(b)
		b.StartTimer()
		for _, c := range cs {
			_ = c.Stop(0)
		}
		for _, c := range cs {
			<-c.Done()
		}
		b.StopTimer()
		cpu += processCPU(b) - cpu0
		for _, c := range cs {
			if st, _ := c.Exit(); st.ExitCode != runtime.ExitCodeKilled {
				b.Fatalf("a stopped guest ended with %+v", st)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
