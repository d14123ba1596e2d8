package imagehelper

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// container is the handle of a container held by the helper's runtime. It
// follows the container with /wait, through whichever helper process runs:
// when one dies, the next one finds the container again.
type container struct {
	h  *Helper
	id string
	runtime.Exited
}

var (
	_ runtime.Container = (*container)(nil)
	_ runtime.Execer    = (*container)(nil)
	_ runtime.Networked = (*container)(nil)
)

// handle returns the Helper's handle of container id, making it (and
// starting its follower) the first time. It fails once Detach or Close
// began.
func (h *Helper) handle(id string) (*container, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return nil, fmt.Errorf("%s: %w: the runtime is closed", id, ErrUnavailable)
	}
	if c := h.handles[id]; c != nil {
		return c, nil
	}
	c := &container{h: h, id: id, Exited: runtime.MakeExited()}
	h.handles[id] = c
	h.following.Add(1)
	go c.follow()
	return c, nil
}

func (c *container) ID() string { return c.id }

// A follower that could not reach the helper asks again after
// followRetry, doubled each time up to followRetryMax.
const (
	followRetry    = time.Second
	followRetryMax = 30 * time.Second
)

// follow waits for the container's exit through the helper, starting the
// helper again when it died, until the exit is known or the Helper is
// detached or closed (then the handle stays open).
func (c *container) follow() {
	defer func() {
		c.h.mu.Lock()
		if c.h.handles[c.id] == c {
			delete(c.h.handles, c.id)
		}
		c.h.mu.Unlock()
		c.h.following.Done()
	}()
	ctx := c.h.ctx
	for retry := followRetry; ctx.Err() == nil; retry = min(2*retry, followRetryMax) {
		p, err := c.h.process(ctx)
		if err == nil {
			var st runtime.ExitStatus
			st, err = p.client.wait(ctx, c.id)
			switch {
			case err == nil:
				c.finish(st)
				return
			case errors.Is(err, errNotFound):
				// Removed by someone else, or containerd lost it.
				c.finish(runtime.ExitStatus{ExitCode: runtime.ExitCodeKilled, Reason: runtime.ReasonError,
					Message: "the container is gone from containerd", FinishedAt: time.Now()})
				return
			}
		}
		if ctx.Err() == nil {
			c.h.log.Warn("following a container through the containerd helper", "container", c.id, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

func (c *container) finish(st runtime.ExitStatus) {
	if len(st.Message) > runtime.MaxMessageBytes {
		st.Message = st.Message[:runtime.MaxMessageBytes]
	}
	c.Finish(st)
}

// lostWait bounds how long Stop waits to see a helper that failed a call
// exit before it starts a new one.
const lostWait = 5 * time.Second

// Stop asks the helper to stop the container; the helper's runtime waits
// up to gracePeriod (and its kill time) for it. A helper that died on the
// way is started again and asked once more.
func (c *container) Stop(gracePeriod time.Duration) error {
	select {
	case <-c.Done():
		return nil
	default:
	}
	var err error
	for range 2 {
		var p *process
		if p, err = c.h.process(c.h.ctx); err != nil {
			break
		}
		if err = p.client.stop(c.h.ctx, c.id, gracePeriod); !errors.Is(err, ErrUnavailable) {
			break
		}
		// Dead, or dying: its exit makes the next process call start
		// another.
		select {
		case <-p.exited:
		case <-time.After(lostWait):
		}
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w", c.id, err)
	}
	return nil
}

// Exec runs argv in the container through the helper; the helper kills
// the process when ctx ends (the call is cancelled).
func (c *container) Exec(ctx context.Context, argv []string) (runtime.ExecResult, error) {
	p, err := c.h.process(ctx)
	if err != nil {
		return runtime.ExecResult{}, fmt.Errorf("exec in %s: %w", c.id, err)
	}
	res, err := p.client.exec(ctx, c.id, argv)
	if err != nil {
		if ctx.Err() != nil {
			return runtime.ExecResult{}, ctx.Err() // the process was killed
		}
		return runtime.ExecResult{}, fmt.Errorf("exec in %s: %w", c.id, err)
	}
	return res, nil
}

// NetNS asks the helper for the container's network namespace.
func (c *container) NetNS(ctx context.Context) (string, error) {
	p, err := c.h.process(ctx)
	if err != nil {
		return "", fmt.Errorf("network namespace of %s: %w", c.id, err)
	}
	path, err := p.client.netns(ctx, c.id)
	if err != nil {
		return "", fmt.Errorf("network namespace of %s: %w", c.id, err)
	}
	return path, nil
}
