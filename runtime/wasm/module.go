package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// module is one compiled module, shared by every container that runs its
// digest. ready is closed when compiled or err is set; users counts
// containers and Prepare calls holding it (guarded by Runtime.mu).
type module struct {
	digest   string
	ready    chan struct{}
	compiled wazero.CompiledModule
	// minPages is the initial size of the module's exported memory, 0 when
	// it exports none (the allocator then catches an oversized start).
	minPages uint32
	// image is the module's memory image; nil when compiled keeps its
	// data section (see memimage.go).
	image *memoryImage
	err   error
	users int
}

// close releases the compiled module and its memory image; running
// instances keep their mappings of the image.
func (m *module) close(ctx context.Context) {
	_ = m.compiled.Close(ctx)
	if m.image != nil {
		m.image.close()
	}
}

// Prepare implements runtime.Runtime: it verifies, decodes, validates and
// compiles the module once per digest.
func (r *Runtime) Prepare(ctx context.Context, m runtime.Module) error {
	mod, err := r.acquire(ctx, m)
	if err != nil {
		return err
	}
	r.release(mod)
	return nil
}

// acquire returns the compiled module for m, compiling it if no other caller
// has, and counts the caller as a user until release.
func (r *Runtime) acquire(ctx context.Context, m runtime.Module) (*module, error) {
	if err := checkDigest(m.Digest); err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errRuntimeClosed
	}
	mod := r.modules[m.Digest]
	if mod == nil {
		mod = &module{digest: m.Digest, ready: make(chan struct{}), users: 1}
		r.modules[m.Digest] = mod
		r.mu.Unlock()
		// The first caller compiles, even if its ctx ends meanwhile: others
		// may be waiting, and wazero's compiler cannot be interrupted.
		mod.err = r.compile(context.WithoutCancel(ctx), m, mod)
		if mod.err != nil {
			r.mu.Lock()
			if r.modules[m.Digest] == mod {
				delete(r.modules, m.Digest) // let a later call try again
			}
			r.mu.Unlock()
		}
		close(mod.ready)
	} else {
		if mod.users == 0 {
			r.idle = slices.DeleteFunc(r.idle, func(x *module) bool { return x == mod })
		}
		mod.users++
		r.mu.Unlock()
		select {
		case <-mod.ready:
		case <-ctx.Done():
			r.release(mod)
			return nil, fmt.Errorf("prepare module %s: %w", m.Digest, context.Cause(ctx))
		}
	}
	if mod.err != nil {
		r.release(mod)
		return nil, mod.err
	}
	return mod, nil
}

// release drops a user of mod. An unused compiled module joins the idle list;
// the least recently used ones beyond Config.IdleModules are closed.
func (r *Runtime) release(mod *module) {
	r.mu.Lock()
	mod.users--
	if mod.users > 0 || r.closed {
		r.mu.Unlock()
		return
	}
	var evict []*module
	if r.modules[mod.digest] == mod && mod.compiled != nil {
		r.idle = append(r.idle, mod)
		for len(r.idle) > r.cfg.IdleModules {
			old := r.idle[0]
			r.idle = r.idle[1:]
			delete(r.modules, old.digest)
			evict = append(evict, old)
		}
	}
	r.mu.Unlock()
	for _, old := range evict {
		old.close(context.Background())
	}
}

// checkDigest accepts "sha256:<64 lowercase hex>".
func checkDigest(d string) error {
	hexPart, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hexPart) != 64 || strings.ToLower(hexPart) != hexPart {
		return fmt.Errorf("module digest %q: want sha256:<64 lowercase hex digits>", d)
	}
	if _, err := hex.DecodeString(hexPart); err != nil {
		return fmt.Errorf("module digest %q: %w", d, err)
	}
	return nil
}

// wasmMagic starts every WebAssembly binary.
const wasmMagic = "\x00asm"

// compile reads, verifies, compiles and validates one module file into
// mod's compiled, minPages and image.
func (r *Runtime) compile(ctx context.Context, m runtime.Module, mod *module) error {
	bin, err := os.ReadFile(m.Path)
	if err != nil {
		return fmt.Errorf("read module %s: %w", m.Digest, err)
	}
	sum := sha256.Sum256(bin)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != m.Digest {
		return fmt.Errorf("module file %s has digest %s, want %s: %w", m.Path, got, m.Digest, runtime.ErrDigestMismatch)
	}
	invalid := func(format string, args ...any) error {
		return &runtime.InvalidModuleError{Digest: m.Digest, Err: fmt.Errorf(format, args...)}
	}
	switch {
	case len(bin) < 8 || string(bin[:4]) != wasmMagic:
		return invalid("not a WebAssembly binary: a module starts with the bytes \\0asm, this file (%d bytes) does not", len(bin))
	case bin[4] != 1 || bin[5] != 0 || bin[6] != 0 || bin[7] != 0:
		if bin[6] != 0 || bin[7] != 0 {
			return invalid("a WebAssembly component (component model, WASI 0.2), but only core modules for WASI preview 1 (wasm32-wasip1) can run")
		}
		return invalid("WebAssembly binary version %d is not supported (want 1)", int(bin[4])|int(bin[5])<<8)
	}
	ctx = experimental.WithCompilationWorkers(ctx, r.cfg.CompileWorkers)
	var compiled wazero.CompiledModule
	if stripped, img := newMemoryImage(bin); img != nil {
		if c, err := r.wr.CompileModule(ctx, stripped); err == nil && img.fits(c) {
			compiled, mod.image = c, img
		} else {
			if err == nil {
				_ = c.Close(ctx)
			}
			img.close() // wazero judges the module as it is, below
		}
	}
	if compiled == nil {
		if compiled, err = r.wr.CompileModule(ctx, coalesceData(bin)); err != nil {
			return invalid("%v", err)
		}
	}
	mod.compiled = compiled
	if err := r.checkImportsExports(compiled); err != nil {
		mod.close(ctx)
		mod.compiled, mod.image = nil, nil
		return &runtime.InvalidModuleError{Digest: m.Digest, Err: err}
	}
	for _, mem := range compiled.ExportedMemories() {
		mod.minPages = max(mod.minPages, mem.Min())
	}
	return nil
}

// checkImportsExports refuses modules that would fail to link or could not
// be started: wazero checks imports only when instantiating, so without this
// a missing import would only show once the guest is started.
func (r *Runtime) checkImportsExports(c wazero.CompiledModule) error {
	var errs []error
	for _, fn := range c.ImportedFunctions() {
		modName, name, _ := fn.Import()
		want, ok := r.provided[name]
		switch {
		case modName != wasiModule || !ok:
			errs = append(errs, fmt.Errorf("imports function %s.%s%s, which the wasm runtime does not provide (it provides WASI preview 1, %q)",
				modName, name, signature(fn), wasiModule))
		case !slices.Equal(fn.ParamTypes(), want.ParamTypes()) || !slices.Equal(fn.ResultTypes(), want.ResultTypes()):
			errs = append(errs, fmt.Errorf("imports function %s.%s with type %s, but WASI preview 1 defines it as %s",
				modName, name, signature(fn), signature(want)))
		}
	}
	for _, mem := range c.ImportedMemories() {
		modName, name, _ := mem.Import()
		errs = append(errs, fmt.Errorf("imports memory %s.%s, but the wasm runtime provides no memory (a WASI command defines its own)", modName, name))
	}
	if start, ok := c.ExportedFunctions()["_start"]; !ok {
		errs = append(errs, errors.New("exports no _start function: only WASI command modules can run (build Go with GOOS=wasip1 GOARCH=wasm, Rust for wasm32-wasip1)"))
	} else if len(start.ParamTypes()) != 0 || len(start.ResultTypes()) != 0 {
		errs = append(errs, fmt.Errorf("_start has type %s, want func()", signature(start)))
	}
	return errors.Join(errs...)
}

// signature renders a function type like "func(i32, i64) i32".
func signature(fn api.FunctionDefinition) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	s := "func(" + names(fn.ParamTypes()) + ")"
	switch res := fn.ResultTypes(); len(res) {
	case 0:
	case 1:
		s += " " + names(res)
	default:
		s += " (" + names(res) + ")"
	}
	return s
}
