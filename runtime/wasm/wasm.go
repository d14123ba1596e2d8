// Package wasm runs WebAssembly containers in process with wazero; it is the
// only package that imports wazero. It implements runtime.Runtime for the
// RuntimeClass handler "wasm": WASI preview 1 command modules (Go's
// GOOS=wasip1, TinyGo, Rust's wasm32-wasip1, hand-written WAT) get their
// argv, environment, preopened directories, stdout/stderr, a real clock and
// crypto/rand randomness.
//
// # One wazero runtime, code compiled once per digest
//
// A Runtime holds exactly one wazero.Runtime, with the WASI host module
// instantiated once, the compiler where wazero has one for the platform
// (amd64, arm64) and the interpreter elsewhere. A module is decoded,
// validated and compiled once per digest and shared by every container
// that runs it; compiled modules no container uses are kept up to
// Config.IdleModules, least recently used first out. With Config.CacheDir,
// wazero's compilation cache on disk keeps the machine code across
// processes, so an agent that restarts loads instead of recompiling.
//
// # Memory limits
//
// wazero's own limit, RuntimeConfig.WithMemoryLimitPages, is fixed per
// wazero runtime and is baked into the module when it is decoded, so honouring
// per-container limits with it would take a wazero runtime and a decoded
// module per distinct limit, and it could not tell a guest that failed because
// its memory.grow was refused from one that failed for another reason.
// Instead each container's linear memory comes from its own allocator
// (wazero's experimental.MemoryAllocator: a byte slice that grows by
// copying, as wazero's default does, but in an anonymous mapping outside the
// Go heap on unix, so the pages a guest never touches cost no RSS and the
// garbage collector neither scans it nor counts it towards its heap goal;
// on Linux the mapping grows with mremap, which moves pages, not bytes):
// the allocator refuses to grow past the container's limit, making
// memory.grow return -1 as the wasm spec allows, and remembers that it did. A guest that then exits non-zero or traps — a Go
// guest dies with "fatal error: out of memory" — is reported as OOMKilled
// with ExitCodeKilled. A module whose initial memory already exceeds the
// limit is OOMKilled at start. So there is one decoded and compiled module per
// digest whatever the limits, and the limit costs one comparison per grow.
//
// # Memory images
//
// On 64-bit Linux a module's data segments (1.3 MB in a Go guest) are laid
// out once per compiled module in a memfd, and each container's allocator
// maps that image copy-on-write into its memory instead of wazero copying
// the data at every instantiation: a Go guest starts in about half the
// time, and the data pages no guest writes are shared (memimage.go).
//
// # Stopping
//
// Code is compiled with wazero's WithCloseOnContextDone, so every loop and
// call checks whether the container's context was cancelled: Stop cancels
// it and even an infinite loop ends at once. The checks are not free:
// loop-heavy guests run noticeably slower (BenchmarkCloseOnContextDoneCost
// measures it), the price of being able to stop any guest. Sleeps (WASI
// poll_oneoff with a clock, which Go's time.Sleep and an idle Go scheduler
// use) wait on the same context, so a sleeping guest stops at once too.
//
// # Filesystem isolation
//
// Mounts are WASI preopens backed by wazero's DirFS: read-only mounts refuse
// every write (also opening with O_CREAT or O_TRUNC, which wazero's ReadFS
// lets through), and wazero refuses paths that escape a preopen with "..".
// DirFS follows symlinks on the host, so writable mounts refuse to create
// them: a guest-made symlink in an emptyDir could lead anywhere. Symlinks the
// agent itself puts in a volume (a configMap's ..data) are followed and must
// stay inside it.
//
// # wazero APIs
//
// Per-container memory limits (experimental.MemoryAllocator), parallel
// compilation (experimental.WithCompilationWorkers) and the mount wrappers
// (experimental/sysfs) use wazero's experimental packages, which may change
// between wazero releases; go.mod pins the version, and the tests here
// cover each of them.
package wasm

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"runtime/debug"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"golang.org/x/sys/cpu"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// Engine choices for Config.Engine.
const (
	EngineAuto        = ""            // compiler where wazero has one, else interpreter
	EngineCompiler    = "compiler"    // fails New on platforms without one
	EngineInterpreter = "interpreter" // portable, slower, ignores CacheDir
)

// HandlerName is the RuntimeClass handler this runtime serves.
const HandlerName = "wasm"

// Config configures a Runtime. The zero value is valid: compiler where
// possible, no cache on disk, no default memory limit beyond wasm32's 4 GiB.
type Config struct {
	// CacheDir is the directory of wazero's compilation cache. Empty keeps
	// compiled code in memory only. Created if missing.
	CacheDir string

	// Engine is EngineAuto, EngineCompiler or EngineInterpreter.
	Engine string

	// DefaultMemoryLimit is the memory limit in bytes for containers whose
	// spec sets none; 0 means the wasm32 maximum (4 GiB).
	DefaultMemoryLimit int64

	// IdleModules is how many compiled modules that no container runs stay
	// in memory for the next start; 0 means 8. Others are recompiled (or
	// loaded from CacheDir) when needed again.
	IdleModules int

	// CompileWorkers is how many goroutines compile one module's functions
	// in parallel; 0 means GOMAXPROCS. Compiling a Go module takes seconds,
	// and it delays the first start of a module not in the cache.
	CompileWorkers int
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	switch c.Engine {
	case EngineAuto, EngineInterpreter:
	case EngineCompiler:
		if !compilerSupported() {
			return fmt.Errorf("wasm engine %q: wazero has no compiler for %s/%s", c.Engine, goruntime.GOOS, goruntime.GOARCH)
		}
	default:
		return fmt.Errorf("wasm engine %q: want %q, %q or empty for automatic", c.Engine, EngineCompiler, EngineInterpreter)
	}
	if c.DefaultMemoryLimit < 0 {
		return fmt.Errorf("wasm default memory limit %d: must not be negative", c.DefaultMemoryLimit)
	}
	if c.IdleModules < 0 {
		return fmt.Errorf("wasm idle modules %d: must not be negative", c.IdleModules)
	}
	if c.CompileWorkers < 0 {
		return fmt.Errorf("wasm compile workers %d: must not be negative", c.CompileWorkers)
	}
	return nil
}

// Runtime runs wasm containers; see the package documentation. It implements
// runtime.Runtime and is safe for concurrent use. Create it with New and
// release it with Close.
type Runtime struct {
	cfg      Config
	info     runtime.Info
	cache    wazero.CompilationCache // nil without CacheDir
	wr       wazero.Runtime
	provided map[string]api.FunctionDefinition // WASI functions by name

	// base is the parent of every container's context; Close cancels it.
	base       context.Context
	cancelBase context.CancelCauseFunc
	guests     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	modules map[string]*module // by digest
	idle    []*module          // modules with no user, least recently used first
}

var _ runtime.Runtime = (*Runtime)(nil)

// wasiModule is the import module name of WASI preview 1.
const wasiModule = wasi_snapshot_preview1.ModuleName

// New creates a Runtime. ctx is used only while setting up.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.IdleModules == 0 {
		cfg.IdleModules = 8
	}
	if cfg.CompileWorkers == 0 {
		cfg.CompileWorkers = goruntime.GOMAXPROCS(0)
	}
	info := Describe(cfg)
	rc := wazero.NewRuntimeConfigInterpreter()
	if info.Mode == EngineCompiler {
		rc = wazero.NewRuntimeConfigCompiler()
	}
	rc = rc.WithCloseOnContextDone(true)

	r := &Runtime{cfg: cfg, modules: map[string]*module{}, info: info}
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm compilation cache %s: %w", cfg.CacheDir, err)
		}
		r.cache = c
		rc = rc.WithCompilationCache(c)
	}
	r.wr = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.wr); err != nil {
		_ = r.closeWazero(ctx)
		return nil, fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	r.provided = r.wr.Module(wasiModule).ExportedFunctionDefinitions()
	r.base, r.cancelBase = context.WithCancelCause(context.Background())
	return r, nil
}

// Describe is the Info of a Runtime New would make of cfg, without making
// one.
func Describe(cfg Config) runtime.Info {
	mode := EngineInterpreter
	if cfg.Engine == EngineCompiler || (cfg.Engine == EngineAuto && compilerSupported()) {
		mode = EngineCompiler
	}
	return runtime.Info{Name: HandlerName, Version: "wazero " + wazeroVersion(), Mode: mode}
}

// Info implements runtime.Runtime.
func (r *Runtime) Info() runtime.Info { return r.info }

// errRuntimeClosed is the cause of the base context once Close runs.
var errRuntimeClosed = errors.New("wasm runtime closed")

// Close implements runtime.Runtime.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()

	r.cancelBase(errRuntimeClosed)
	waited := make(chan struct{})
	go func() {
		r.guests.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		return fmt.Errorf("wasm runtime close: guests still running: %w", context.Cause(ctx))
	}

	r.mu.Lock()
	mods := r.modules
	r.modules, r.idle = nil, nil
	r.mu.Unlock()
	for _, m := range mods {
		<-m.ready
		if m.compiled != nil {
			m.close(ctx)
		}
	}
	return r.closeWazero(ctx)
}

func (r *Runtime) closeWazero(ctx context.Context) error {
	err := r.wr.Close(ctx)
	if r.cache != nil {
		if cerr := r.cache.Close(ctx); err == nil {
			err = cerr
		}
	}
	return err
}

// compilerSupported mirrors wazero's own check (internal/platform) so that
// Info can say which engine runs: wazero offers no public way to ask.
func compilerSupported() bool {
	switch goruntime.GOOS {
	case "linux", "darwin", "freebsd", "netbsd", "windows":
		switch goruntime.GOARCH {
		case "arm64":
			return true
		case "amd64":
			return cpu.X86.HasSSE41
		}
	}
	return false
}

// wazeroVersion is the wazero module version this binary was built with,
// "dev" where the build has no module information (as in tests).
func wazeroVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/tetratelabs/wazero" {
				if dep.Replace != nil && dep.Replace.Version != "" {
					return dep.Replace.Version
				}
				if dep.Version != "" && dep.Version != "(devel)" {
					return dep.Version
				}
			}
		}
	}
	return "dev"
}
