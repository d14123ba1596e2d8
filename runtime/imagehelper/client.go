package imagehelper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/internal/sockjson"
)

// ErrUnavailable is wrapped by errors of a Helper whose process could not
// be started or went away during a call: the runtime cannot run containers
// now (the pod's waiting reason is RuntimeClassUnsupported, not an image
// problem).
var ErrUnavailable = errors.New("containerd helper unavailable")

// client speaks the protocol to one server over its unix socket. Its
// methods are safe for concurrent use; each call, and each running
// container's output stream, has a connection of its own.
type client struct {
	hc *http.Client
	// lost explains why a container's stream ended without its exit frame
	// (the read error it got); it may wait a little to learn whether the
	// server's process died.
	lost func(err error) string
}

func newClient(socket string, lost func(error) string) *client {
	return &client{hc: sockjson.NewClient(socket), lost: lost}
}

// closeIdle closes the connections not in use (the server went away).
func (c *client) closeIdle() { c.hc.CloseIdleConnections() }

// errorKinds are the sentinels the server's errors stand for.
var errorKinds = map[string]error{kindImagePull: runtime.ErrImagePull}

// call posts in (nil: a GET) to path and decodes the answer into out (nil:
// none expected).
func (c *client) call(ctx context.Context, path string, in, out any) error {
	return sockjson.Call(ctx, c.hc, path, in, out, errorKinds, ErrUnavailable)
}

func (c *client) info(ctx context.Context) (runtime.Info, error) {
	var info runtime.Info
	err := c.call(ctx, "/info", nil, &info)
	return info, err
}

func (c *client) pull(ctx context.Context, ref string) error {
	return c.call(ctx, "/pull", pullRequest{Ref: ref}, nil)
}

// start starts spec on the server and returns its handle. ctx bounds the
// start only: the output stream outlives it.
func (c *client) start(ctx context.Context, spec runtime.ContainerSpec) (*container, error) {
	b, err := json.Marshal(startRequest{
		ID: spec.ID, Image: spec.Image, Command: spec.Command, Args: spec.Args, Env: spec.Env,
		Mounts: spec.Mounts, MemoryLimit: spec.MemoryLimit,
	})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	notStarted := context.AfterFunc(ctx, cancel)
	req, err := http.NewRequestWithContext(sctx, http.MethodPost, "http://helper/start", bytes.NewReader(b))
	if err != nil {
		cancel()
		return nil, err
	}
	startedAt := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		cancel()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start %s: %w", spec.ID, ctx.Err())
		}
		return nil, fmt.Errorf("start %s: %w", spec.ID, unavailable(err))
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		return nil, sockjson.ResponseError(resp, errorKinds, ErrUnavailable)
	}
	if !notStarted() {
		// ctx ended as the container started: dropping the stream kills it.
		cancel()
		resp.Body.Close()
		return nil, fmt.Errorf("start %s: %w", spec.ID, ctx.Err())
	}
	ctr := &container{c: c, id: spec.ID, handle: resp.Header.Get(handleHeader), startedAt: startedAt, done: make(chan struct{})}
	go ctr.read(resp.Body, cancel, spec.Stdout, spec.Stderr)
	return ctr, nil
}

// container is the handle of a container running in the server.
type container struct {
	c         *client
	id        string
	handle    string
	startedAt time.Time
	done      chan struct{}
	status    runtime.ExitStatus // set before done is closed
}

var _ runtime.Container = (*container)(nil)

func (c *container) ID() string { return c.id }

func (c *container) Done() <-chan struct{} { return c.done }

func (c *container) Exit() (runtime.ExitStatus, bool) {
	select {
	case <-c.done:
		return c.status, true
	default:
		return runtime.ExitStatus{}, false
	}
}

// Stop asks the server to stop the container; the server's runtime waits
// up to gracePeriod (and its kill time) for it. If the server is gone, the
// container's stream ends as well and Stop returns once it has.
func (c *container) Stop(gracePeriod time.Duration) error {
	select {
	case <-c.done:
		return nil
	default:
	}
	err := c.c.call(context.Background(), "/stop", stopRequest{Handle: c.handle, Grace: gracePeriod}, nil)
	if err == nil || !errors.Is(err, ErrUnavailable) {
		return err
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("stop %s: %w", c.id, err)
	}
}

// read copies the output frames to the writers, one frame at a time (so
// one writer may serve both streams), until the exit frame.
func (c *container) read(body io.ReadCloser, cancel context.CancelFunc, stdout, stderr io.Writer) {
	defer cancel()
	defer body.Close()
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	dec := json.NewDecoder(body)
	for {
		var f frame
		if err := dec.Decode(&f); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the exit frame never came
			}
			msg := c.c.lost(err)
			if len(msg) > runtime.MaxMessageBytes {
				msg = msg[:runtime.MaxMessageBytes]
			}
			// The helper's runtime would have reported a kill by the
			// runtime as ExitCodeKilled; the container is killed when the
			// helper starts again (see Helper).
			c.status = runtime.ExitStatus{ExitCode: runtime.ExitCodeKilled, Reason: runtime.ReasonError, Message: msg,
				StartedAt: c.startedAt, FinishedAt: time.Now()}
			close(c.done)
			return
		}
		switch {
		case f.Exit != nil:
			c.status = *f.Exit
			close(c.done)
			return
		case f.Stdout != nil:
			_, _ = stdout.Write(f.Stdout)
		case f.Stderr != nil:
			_, _ = stderr.Write(f.Stderr)
		}
	}
}

func unavailable(err error) error { return fmt.Errorf("%w: %w", ErrUnavailable, err) }
