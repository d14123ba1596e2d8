package imagehelper

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// fakeRuntime is the image runtime the protocol tests serve: containerd
// cannot run inside a unit test of the protocol, and the protocol's job is
// only to carry a runtime's calls and results. A container runs the steps
// of its Args in order:
//
//	out:TEXT   write TEXT to stdout
//	err:TEXT   write TEXT to stderr
//	exit:N     exit with code N
//	wait       wait until stopped (Stop or Close)
//
// Image "missing" fails with runtime.ErrImagePull, in Pull and Start.
type fakeRuntime struct {
	mu     sync.Mutex
	closed bool
	live   map[*fakeContainer]struct{}
}

func newFakeRuntime() *fakeRuntime { return &fakeRuntime{live: map[*fakeContainer]struct{}{}} }

func (r *fakeRuntime) Info() runtime.Info {
	return runtime.Info{Name: "runc", Version: "containerd://fake", Mode: "fake"}
}

func (r *fakeRuntime) Prepare(context.Context, runtime.Module) error { return nil }

func (r *fakeRuntime) Pull(_ context.Context, ref string) error {
	if ref == "missing" {
		return fmt.Errorf("pull image %s: %w: not found", ref, runtime.ErrImagePull)
	}
	return nil
}

func (r *fakeRuntime) Start(ctx context.Context, spec runtime.ContainerSpec) (runtime.Container, error) {
	if err := r.Pull(ctx, spec.Image); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("start %s: runtime is closed", spec.ID)
	}
	c := &fakeContainer{id: spec.ID, done: make(chan struct{}), stop: make(chan string, 1)}
	r.live[c] = struct{}{}
	go func() {
		st := c.run(spec)
		r.mu.Lock()
		delete(r.live, c)
		r.mu.Unlock()
		c.status = st
		close(c.done)
	}()
	return c, nil
}

func (r *fakeRuntime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	live := make([]*fakeContainer, 0, len(r.live))
	for c := range r.live {
		live = append(live, c)
	}
	r.mu.Unlock()
	for _, c := range live {
		c.kill("runtime closed")
	}
	for _, c := range live {
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

type fakeContainer struct {
	id     string
	done   chan struct{}
	stop   chan string        // why it was stopped
	status runtime.ExitStatus // set before done is closed
}

func (c *fakeContainer) run(spec runtime.ContainerSpec) (st runtime.ExitStatus) {
	st = runtime.ExitStatus{StartedAt: time.Now(), Reason: runtime.ReasonCompleted}
	defer func() { st.FinishedAt = time.Now() }()
	for _, step := range spec.Args {
		what, arg, _ := strings.Cut(step, ":")
		switch what {
		case "out":
			spec.Stdout.Write([]byte(arg))
		case "err":
			spec.Stderr.Write([]byte(arg))
		case "exit":
			n, _ := strconv.Atoi(arg)
			st.ExitCode = int32(n)
			if n != 0 {
				st.Reason = runtime.ReasonError
			}
			return st
		case "wait":
			why := <-c.stop
			st.ExitCode, st.Reason, st.Message = runtime.ExitCodeKilled, runtime.ReasonError, why
			return st
		}
	}
	return st
}

func (c *fakeContainer) kill(why string) {
	select {
	case c.stop <- why:
	default:
	}
}

func (c *fakeContainer) ID() string { return c.id }

func (c *fakeContainer) Done() <-chan struct{} { return c.done }

func (c *fakeContainer) Exit() (runtime.ExitStatus, bool) {
	select {
	case <-c.done:
		return c.status, true
	default:
		return runtime.ExitStatus{}, false
	}
}

// Stop ends a waiting container with a message naming the grace period.
func (c *fakeContainer) Stop(grace time.Duration) error {
	c.kill(fmt.Sprintf("stopped with grace %s", grace))
	if grace <= 0 {
		return nil
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(grace):
		return errors.New("still running")
	}
}
