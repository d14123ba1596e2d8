package containerd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/wasmfleet/wasmfleet/runtime"
)

var (
	_ runtime.Execer    = (*container)(nil)
	_ runtime.Networked = (*container)(nil)
)

// NetNS implements runtime.Networked: the network namespace of the task's
// process.
func (c *container) NetNS(context.Context) (string, error) {
	task := c.runningTask()
	if task == nil || task.Pid() == 0 {
		return "", fmt.Errorf("network namespace of %s: the container is not running", c.id)
	}
	return fmt.Sprintf("/proc/%d/ns/net", task.Pid()), nil
}

// Exec implements runtime.Execer: argv runs as another process of the
// container's task, with its spec's process settings (environment, user,
// working directory, capabilities) and no terminal.
func (c *container) Exec(ctx context.Context, argv []string) (runtime.ExecResult, error) {
	if len(argv) == 0 {
		return runtime.ExecResult{}, fmt.Errorf("exec in %s: no command", c.id)
	}
	task := c.runningTask()
	if task == nil {
		return runtime.ExecResult{}, fmt.Errorf("exec in %s: the container is not running", c.id)
	}
	cctx := c.r.ctx(ctx)
	spec, err := c.cntr.Spec(cctx)
	if err != nil {
		return runtime.ExecResult{}, fmt.Errorf("exec in %s: read spec: %w", c.id, err)
	}
	if spec.Process == nil {
		return runtime.ExecResult{}, fmt.Errorf("exec in %s: the spec has no process", c.id)
	}
	pspec := *spec.Process
	pspec.Args = argv
	pspec.Terminal = false
	pspec.ConsoleSize = nil

	out := &cappedOutput{limit: runtime.MaxExecOutput}
	ioOpts := []cio.Opt{cio.WithStreams(nil, out, out)}
	if c.r.cfg.FIFODir != "" {
		ioOpts = append(ioOpts, cio.WithFIFODir(c.r.cfg.FIFODir))
	}
	// The process is waited for and deleted even when ctx ends first.
	bg := context.WithoutCancel(cctx)
	proc, err := task.Exec(cctx, "exec-"+randomHex(), &pspec, cio.NewCreator(ioOpts...))
	if err != nil {
		return runtime.ExecResult{}, fmt.Errorf("exec in %s: %w", c.id, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(bg, c.r.cfg.Timeout)
		defer cancel()
		_, _ = proc.Delete(dctx, containerd.WithProcessKill)
	}()
	statusC, err := proc.Wait(bg)
	if err != nil {
		return runtime.ExecResult{}, fmt.Errorf("exec in %s: %w", c.id, err)
	}
	if err := proc.Start(cctx); err != nil {
		return runtime.ExecResult{}, fmt.Errorf("exec in %s: start: %w", c.id, err)
	}
	select {
	case st := <-statusC:
		code, _, err := st.Result()
		if err != nil {
			return runtime.ExecResult{}, fmt.Errorf("exec in %s: %w", c.id, err)
		}
		// The output is whole once the copies from the pipes have ended.
		proc.IO().Wait()
		return runtime.ExecResult{ExitCode: int32(code), Output: out.bytes()}, nil
	case <-ctx.Done():
		kctx, cancel := context.WithTimeout(bg, c.r.cfg.Timeout)
		defer cancel()
		if err := proc.Kill(kctx, syscall.SIGKILL); err != nil {
			return runtime.ExecResult{}, errors.Join(ctx.Err(), fmt.Errorf("kill exec in %s: %w", c.id, err))
		}
		return runtime.ExecResult{}, ctx.Err()
	}
}

// runningTask is the container's task while it runs, else nil.
func (c *container) runningTask() containerd.Task {
	select {
	case <-c.done:
		return nil
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.task
}

// cappedOutput keeps the first limit bytes written to it, from the two
// goroutines that copy stdout and stderr.
type cappedOutput struct {
	limit int
	mu    sync.Mutex
	buf   []byte
}

func (o *cappedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := o.limit - len(o.buf); n > 0 {
		o.buf = append(o.buf, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

func (o *cappedOutput) bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf
}
