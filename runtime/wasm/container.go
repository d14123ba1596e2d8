package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// container is the handle of one started guest. The guest runs on one
// goroutine (run), which alone touches the wazero module; the handle's
// methods only cancel its context and read status after done is closed.
type container struct {
	id     string
	ctx    context.Context
	cancel context.CancelCauseFunc
	runtime.Exited

	startedAt time.Time
}

var _ runtime.Container = (*container)(nil)

// errStopped is the cause of a container's context once Stop runs.
var errStopped = errors.New("stopped")

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, spec runtime.ContainerSpec) (runtime.Container, error) {
	if spec.ID == "" {
		return nil, errors.New("start container: empty ID")
	}
	if spec.MemoryLimit < 0 {
		return nil, fmt.Errorf("start container %s: negative memory limit %d", spec.ID, spec.MemoryLimit)
	}
	for _, s := range spec.Args {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, fmt.Errorf("start container %s: argument %q contains a NUL byte", spec.ID, s)
		}
	}
	for _, e := range spec.Env {
		if e.Name == "" || strings.IndexByte(e.Name, '=') >= 0 || strings.IndexByte(e.Name+e.Value, 0) >= 0 {
			return nil, fmt.Errorf("start container %s: invalid environment variable %q", spec.ID, e.Name)
		}
	}
	fsc, err := fsConfig(spec.Mounts)
	if err != nil {
		return nil, fmt.Errorf("start container %s: %w", spec.ID, err)
	}
	mod, err := r.acquire(ctx, spec.Module)
	if err != nil {
		return nil, fmt.Errorf("start container %s: %w", spec.ID, err)
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.release(mod)
		return nil, fmt.Errorf("start container %s: %w", spec.ID, errRuntimeClosed)
	}
	r.guests.Add(1) // under mu, so Close's Wait cannot miss it
	r.mu.Unlock()

	c := &container{id: spec.ID, Exited: runtime.MakeExited(), startedAt: time.Now()}
	c.ctx, c.cancel = context.WithCancelCause(r.base)

	limit := spec.MemoryLimit
	if limit == 0 {
		limit = r.cfg.DefaultMemoryLimit
	}
	alloc := newLimitAllocator(limit, mod.image)
	mc := wazero.NewModuleConfig().
		WithName("").         // anonymous: many instances of one module may run
		WithStartFunctions(). // _start is called by run, after instantiation
		WithArgs(spec.Args...).
		WithStdout(orDiscard(spec.Stdout)).
		WithStderr(orDiscard(spec.Stderr)).
		WithFSConfig(fsc).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(c.nanosleep).
		WithOsyield(goruntime.Gosched).
		WithRandSource(rand.Reader)
	for _, e := range spec.Env {
		mc = mc.WithEnv(e.Name, e.Value)
	}

	go func() {
		defer r.guests.Done()
		defer r.release(mod)
		c.run(r.wr, mod, mc, alloc)
	}()
	// Let the guest's goroutine run now, on this thread, rather than
	// after every goroutine that is runnable already (an agent restarting
	// with many pods wakes them all at once): the first guests started
	// are the first to run.
	goruntime.Gosched()
	return c, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// nanosleep is WASI's sleep (poll_oneoff with a clock subscription) for this
// guest: real time, cut short when the container is stopped so that a
// sleeping guest stops at once. (wazero's default does not sleep at all, and
// its WithSysNanosleep cannot be interrupted.)
//
// Once the container is stopped, it ends the guest's call right there, as
// proc_exit does. Returning would not: a Go guest whose sleep returns early
// sleeps again at once, in a loop that lasts until wazero's own watcher of
// the context, a goroutine, gets to close the module; with a few hundred
// guests stopped together (an agent stopping, a node drained) each such
// watcher waited behind every spinning guest's time slice, and stopping 200
// sleeping guests took about 2 s of both cores.
func (c *container) nanosleep(ns int64) {
	if c.ctx.Err() != nil {
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
	if ns <= 0 {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	select {
	case <-t.C:
	case <-c.ctx.Done():
		t.Stop()
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
}

// run instantiates the module, calls _start and records how the guest ended.
func (c *container) run(wr wazero.Runtime, mod *module, mc wazero.ModuleConfig, alloc *limitAllocator) {
	instantiated, err := c.call(wr, mod, mc, alloc)
	es := c.exitStatus(err, instantiated, alloc)
	es.StartedAt, es.FinishedAt = c.startedAt, time.Now()
	c.cancel(nil) // release the context's resources
	c.Finish(es)
}

// call runs the guest to its end. It returns whether the module was
// instantiated and the error of _start, or of instantiation; alloc keeps its
// verdict on memory.
func (c *container) call(wr wazero.Runtime, mod *module, mc wazero.ModuleConfig, alloc *limitAllocator) (instantiated bool, err error) {
	if mod.minPages > 0 && uint64(mod.minPages)*pageSize > alloc.limit {
		alloc.overAtStart = true // known without allocating it
		return false, nil
	}
	inst, err := wr.InstantiateModule(experimental.WithMemoryAllocator(c.ctx, alloc), mod.compiled, mc)
	if err != nil {
		return false, err
	}
	defer inst.Close(context.Background())
	if alloc.overAtStart {
		return true, nil
	}
	if alloc.imageLost {
		return true, errors.New("the module's initial memory could not be written: its memory image could be neither mapped nor read")
	}
	_, err = inst.ExportedFunction("_start").Call(c.ctx)
	return true, err
}

// exitStatus translates how the guest ended into Kubernetes terms.
func (c *container) exitStatus(err error, instantiated bool, alloc *limitAllocator) runtime.ExitStatus {
	var exit *sys.ExitError
	isExit := errors.As(err, &exit)
	switch {
	case alloc.overAtStart:
		return runtime.ExitStatus{ExitCode: runtime.ExitCodeKilled, Reason: runtime.ReasonOOMKilled,
			Message: fmt.Sprintf("the module's initial memory is larger than the memory limit of %s", mib(alloc.limit))}
	case err == nil || (isExit && exit.ExitCode() == 0):
		return runtime.ExitStatus{ExitCode: 0, Reason: runtime.ReasonCompleted}
	case c.ctx.Err() != nil && (!isExit || exit.ExitCode() == sys.ExitCodeContextCanceled):
		return runtime.ExitStatus{ExitCode: runtime.ExitCodeKilled, Reason: runtime.ReasonError,
			Message: stopMessage(context.Cause(c.ctx))}
	case alloc.refused > 0:
		how := "trapped"
		if isExit {
			how = fmt.Sprintf("exited with code %d", exit.ExitCode())
		}
		return runtime.ExitStatus{ExitCode: runtime.ExitCodeKilled, Reason: runtime.ReasonOOMKilled,
			Message: fmt.Sprintf("the guest %s after its memory could not grow to %s past its limit of %s", how, mib(alloc.refused), mib(alloc.limit))}
	case isExit:
		return runtime.ExitStatus{ExitCode: int32(exit.ExitCode()), Reason: runtime.ReasonError}
	case !instantiated:
		return runtime.ExitStatus{ExitCode: runtime.ExitCodeTrap, Reason: runtime.ReasonError,
			Message: truncate("instantiate: " + err.Error())}
	default:
		return runtime.ExitStatus{ExitCode: runtime.ExitCodeTrap, Reason: runtime.ReasonError,
			Message: truncate(err.Error())}
	}
}

func stopMessage(cause error) string {
	if cause == errStopped {
		return "the guest was stopped"
	}
	return "the guest was stopped: " + cause.Error()
}

func mib(b uint64) string {
	if b%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", b>>20)
	}
	return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20))
}

func truncate(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= runtime.MaxMessageBytes {
		return s
	}
	const more = "\n…"
	cut := runtime.MaxMessageBytes - len(more)
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return s[:cut] + more
}

// ID implements runtime.Container.
func (c *container) ID() string { return c.id }

// Stop implements runtime.Container. WASI preview 1 has no signals, so the
// guest is terminated at once: its context is cancelled, which the compiled
// code checks in every loop and call and sleeps wait on.
func (c *container) Stop(gracePeriod time.Duration) error {
	c.cancel(errStopped)
	if gracePeriod <= 0 {
		return nil
	}
	t := time.NewTimer(gracePeriod)
	defer t.Stop()
	select {
	case <-c.Done():
		return nil
	case <-t.C:
		return fmt.Errorf("stop container %s: still running after %s", c.id, gracePeriod)
	}
}
