package containerd

import (
	"context"
	"errors"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// Attach returns the handle of the detached container started with spec
// ID id, by this Runtime or an earlier one of the same Owner: running, or
// ended and not yet removed. It reports false when containerd holds none.
func (r *Runtime) Attach(ctx context.Context, id string) (runtime.Container, bool, error) {
	r.mu.Lock()
	closed, c := r.closed, r.held[id]
	r.mu.Unlock()
	switch {
	case closed:
		return nil, false, fmt.Errorf("attach %s: containerd runtime is closed", id)
	case c != nil:
		return c, true, nil
	}
	ctx = r.ctx(ctx)
	cs, err := r.find(ctx, id)
	if err != nil {
		return nil, false, fmt.Errorf("attach %s: %w", id, err)
	}
	for _, cntr := range cs {
		info, err := cntr.Info(ctx, containerd.WithoutRefreshedMetadata)
		if err != nil || info.Labels[LabelLog] == "" {
			continue
		}
		c, err := r.attach(ctx, id, cntr, info.Labels, info.CreatedAt)
		if err != nil {
			return nil, false, fmt.Errorf("attach %s: %w", id, err)
		}
		return c, true, nil
	}
	return nil, false, nil
}

// attach makes the handle of the detached container cntr and starts its
// waiter.
func (r *Runtime) attach(ctx context.Context, id string, cntr containerd.Container, labels map[string]string, created time.Time) (*container, error) {
	c := &container{r: r, id: id, cid: cntr.ID(), cntr: cntr, logged: true, done: make(chan struct{})}
	c.startedAt = created
	if t, err := time.Parse(time.RFC3339Nano, labels[LabelStartedAt]); err == nil {
		c.startedAt = t
	}
	if s, err := cntr.Spec(ctx); err == nil && s.Linux != nil && s.Linux.Resources != nil && s.Linux.Resources.Memory != nil && s.Linux.Resources.Memory.Limit != nil {
		c.limit = *s.Linux.Resources.Memory.Limit
	}
	task, err := cntr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		// Created, but its task never started or is gone (containerd
		// lost it in a restart of its own).
		c.status = runtime.ExitStatus{ExitCode: runtime.ExitCodeKilled, Reason: runtime.ReasonError,
			Message: "the container has no task in containerd", StartedAt: c.startedAt, FinishedAt: time.Now()}
		close(c.done)
		return c, r.hold(c, false)
	}
	if err != nil {
		return nil, fmt.Errorf("task: %w", err)
	}
	c.task = task
	st, err := task.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("task status: %w", err)
	}
	if st.Status == containerd.Created {
		// Its Start never started it (the agent stopped meanwhile): it
		// never ran, and its task would never end.
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("delete a task never started: %w", err)
		}
		c.task = nil
		c.status = runtime.ExitStatus{ExitCode: runtime.ExitCodeKilled, Reason: runtime.ReasonError,
			Message: "the container's task was created but never started", StartedAt: c.startedAt, FinishedAt: time.Now()}
		close(c.done)
		return c, r.hold(c, false)
	}
	running := st.Status != containerd.Stopped
	if running {
		r.events.watch(c.cid)
	}
	exitCh, err := task.Wait(r.ctx(context.Background()))
	if err != nil {
		r.events.forget(c.cid)
		return nil, fmt.Errorf("wait task: %w", err)
	}
	if err := r.hold(c, true); err != nil {
		r.events.forget(c.cid)
		return nil, err
	}
	go c.wait(exitCh, running)
	return c, nil
}

// hold records c as held, and counts its waiter if it will have one,
// unless the Runtime is closed.
func (r *Runtime) hold(c *container, waiter bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("containerd runtime is closed")
	}
	r.held[c.id] = c
	if waiter {
		r.wg.Add(1)
	}
	return nil
}

// find lists the containers of the Runtime's owner with spec ID id.
func (r *Runtime) find(ctx context.Context, id string) ([]containerd.Container, error) {
	filter := fmt.Sprintf("labels.%q==%q", LabelID, id)
	if r.cfg.Owner != "" {
		filter += fmt.Sprintf(",labels.%q==%q", LabelOwner, r.cfg.Owner)
	}
	return r.client.Containers(ctx, filter)
}

// IDs lists the spec IDs of the owner's detached containers in containerd,
// running or ended.
func (r *Runtime) IDs(ctx context.Context) ([]string, error) {
	ctx = r.ctx(ctx)
	filter := fmt.Sprintf("labels.%q", LabelLog)
	if r.cfg.Owner != "" {
		filter += fmt.Sprintf(",labels.%q==%q", LabelOwner, r.cfg.Owner)
	}
	cs, err := r.client.Containers(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var ids []string
	for _, c := range cs {
		if info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata); err == nil && info.Labels[LabelID] != "" {
			ids = append(ids, info.Labels[LabelID])
		}
	}
	return ids, nil
}

// Remove kills the container with spec ID id if it runs and deletes it from
// containerd, with its task and snapshot. An unknown id is not an error.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	r.mu.Lock()
	c := r.held[id]
	delete(r.held, id)
	r.mu.Unlock()
	if c != nil {
		c.mu.Lock()
		c.stopped = true
		c.mu.Unlock()
	}
	if err := r.removeByID(r.ctx(ctx), id); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	return nil
}

// removeByID deletes the owner's containers of spec ID id from containerd.
func (r *Runtime) removeByID(ctx context.Context, id string) error {
	cs, err := r.find(ctx, id)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, cntr := range cs {
		errs = append(errs, r.deleteContainer(ctx, cntr))
	}
	return errors.Join(errs...)
}

// Detach lets go of the containers, which run on in containerd, and closes
// the connection. The handles of running containers stay open; every
// method fails afterwards. The containers with writers are left too (their
// output then has nowhere to go): the next New of the same Owner removes
// them.
func (r *Runtime) Detach() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed, r.detached = true, true
	r.mu.Unlock()
	r.starts.Wait() // a Start that fails now cleans up on the open connection
	r.events.stop()
	err := r.client.Close()
	r.wg.Wait() // the waiters end on the closed connection
	if err != nil {
		return fmt.Errorf("detach containerd runtime: %w", err)
	}
	return nil
}
