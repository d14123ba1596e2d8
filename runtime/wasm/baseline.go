package wasm

import (
	"context"
	"fmt"
	"io"
	goruntime "runtime"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"golang.org/x/sync/errgroup"
)

// Baseline is raw wazero, configured as this package configures it
// (compiler where available, WithCloseOnContextDone, real clocks, WASI
// preview 1), with none of the runtime around it: the yardstick `wasmfleet
// bench agent` measures pod starts against.
type Baseline struct {
	// Instantiate is instantiate + run of a module already compiled in the
	// runtime (a module other pods on the node already run).
	Instantiate []time.Duration
	// WarmCache is a new runtime reading a warm compilation cache
	// directory, compile (from the cache), instantiate + run, close: what an
	// agent restart costs per module.
	WarmCache []time.Duration
	// AllAtOnce is a new runtime reading the warm cache, compile, then
	// instantiate + run of many instances at once, GOMAXPROCS at a time,
	// until the last has returned: raw wazero doing the work of an agent
	// restart that starts that many pods. Workers is that GOMAXPROCS.
	AllAtOnce time.Duration
	Workers   int
}

// MeasureBaseline runs module n times each way with args and env (the
// module must exit by itself, e.g. hello with HELLO_COUNT=1), then
// atOnce instances at once. cacheDir is warmed first.
func MeasureBaseline(ctx context.Context, module []byte, cacheDir string, args []string, env map[string]string, n, atOnce int) (Baseline, error) {
	var b Baseline
	config := func() wazero.ModuleConfig {
		c := wazero.NewModuleConfig().WithName("").WithArgs(args...).
			WithStdout(io.Discard).WithStderr(io.Discard).WithSysWalltime().WithSysNanotime().WithSysNanosleep()
		for k, v := range env {
			c = c.WithEnv(k, v)
		}
		return c
	}
	open := func() (wazero.Runtime, wazero.CompilationCache, wazero.CompiledModule, error) {
		cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
		if err != nil {
			return nil, nil, nil, err
		}
		wr := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true).WithCompilationCache(cache))
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, wr); err != nil {
			return nil, nil, nil, err
		}
		compiled, err := wr.CompileModule(ctx, module)
		if err != nil {
			wr.Close(ctx)
			cache.Close(ctx)
			return nil, nil, nil, err
		}
		return wr, cache, compiled, nil
	}
	run := func(wr wazero.Runtime, compiled wazero.CompiledModule) error {
		mod, err := wr.InstantiateModule(ctx, compiled, config())
		if err != nil {
			return fmt.Errorf("baseline instantiate: %w", err)
		}
		return mod.Close(ctx)
	}

	wr, cache, compiled, err := open() // warms the cache
	if err != nil {
		return b, err
	}
	defer cache.Close(ctx)
	defer wr.Close(ctx)
	for range n {
		start := time.Now()
		if err := run(wr, compiled); err != nil {
			return b, err
		}
		b.Instantiate = append(b.Instantiate, time.Since(start))
	}
	for range n {
		start := time.Now()
		wr2, cache2, compiled2, err := open()
		if err != nil {
			return b, err
		}
		err = run(wr2, compiled2)
		wr2.Close(ctx)
		cache2.Close(ctx)
		if err != nil {
			return b, err
		}
		b.WarmCache = append(b.WarmCache, time.Since(start))
	}

	start := time.Now()
	wr3, cache3, compiled3, err := open()
	if err != nil {
		return b, err
	}
	defer cache3.Close(ctx)
	defer wr3.Close(ctx)
	var g errgroup.Group
	b.Workers = goruntime.GOMAXPROCS(0)
	g.SetLimit(b.Workers)
	for range atOnce {
		g.Go(func() error { return run(wr3, compiled3) })
	}
	if err := g.Wait(); err != nil {
		return b, err
	}
	b.AllAtOnce = time.Since(start)
	return b, nil
}
