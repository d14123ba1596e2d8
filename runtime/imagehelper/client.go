package imagehelper

import (
	"context"
	"errors"
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

// errNotFound is wrapped by the errors of kind kindNotFound.
var errNotFound = errors.New("container not held by the runtime")

// client speaks the protocol to one server over its unix socket. Its
// methods are safe for concurrent use; each call has a connection of its
// own.
type client struct {
	hc *http.Client
}

func newClient(socket string) *client {
	return &client{hc: sockjson.NewClient(socket)}
}

// closeIdle closes the connections not in use (the server went away).
func (c *client) closeIdle() { c.hc.CloseIdleConnections() }

// errorKinds are the sentinels the server's errors stand for.
var errorKinds = map[string]error{kindImagePull: runtime.ErrImagePull, kindNotFound: errNotFound}

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

func (c *client) start(ctx context.Context, spec runtime.ContainerSpec) error {
	return c.call(ctx, "/start", startRequest{
		ID: spec.ID, Image: spec.Image, Command: spec.Command, Args: spec.Args, Env: spec.Env, Hostname: spec.Hostname,
		Mounts: spec.Mounts, MemoryLimit: spec.MemoryLimit, HostNetwork: spec.HostNetwork, Network: spec.NetworkGroup, Log: spec.Log,
	}, nil)
}

func (c *client) attach(ctx context.Context, id string) (bool, error) {
	var resp attachResponse
	err := c.call(ctx, "/attach", idRequest{ID: id}, &resp)
	return resp.Found, err
}

// wait returns the exit status of container id once it ended.
func (c *client) wait(ctx context.Context, id string) (runtime.ExitStatus, error) {
	var st runtime.ExitStatus
	err := c.call(ctx, "/wait", idRequest{ID: id}, &st)
	return st, err
}

func (c *client) stop(ctx context.Context, id string, grace time.Duration) error {
	return c.call(ctx, "/stop", stopRequest{ID: id, Grace: grace}, nil)
}

func (c *client) exec(ctx context.Context, id string, argv []string) (runtime.ExecResult, error) {
	var res runtime.ExecResult
	err := c.call(ctx, "/exec", execRequest{ID: id, Argv: argv}, &res)
	return res, err
}

func (c *client) netns(ctx context.Context, id string) (string, error) {
	var resp netNSResponse
	err := c.call(ctx, "/netns", idRequest{ID: id}, &resp)
	return resp.Path, err
}

func (c *client) remove(ctx context.Context, id string) error {
	return c.call(ctx, "/remove", idRequest{ID: id}, nil)
}

func (c *client) ids(ctx context.Context) ([]string, error) {
	var ids []string
	err := c.call(ctx, "/ids", nil, &ids)
	return ids, err
}

func (c *client) close(ctx context.Context) error {
	return c.call(ctx, "/close", struct{}{}, nil)
}
