//go:build nocontainerd

package nodeagent

import (
	"context"
	"errors"
)

// Built with the tag nocontainerd: no runc runtime (see containerd.go).
// The defaults are runtime/containerd's, so configurations stay valid.

const (
	defaultContainerdAddress   = "/run/containerd/containerd.sock"
	defaultContainerdNamespace = "wasmfleet"
)

func (c *Config) validateContainerd() error { return nil }

func newImageRuntime(context.Context, *Config) (ImageRuntime, error) {
	return nil, errors.New("this agent was built without containerd support (build tag nocontainerd)")
}
