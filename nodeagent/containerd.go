//go:build !nocontainerd

package nodeagent

import (
	"context"

	"github.com/wasmfleet/wasmfleet/runtime/containerd"
)

// The runc runtime (containerd) is linked in unless the build tag
// nocontainerd leaves it out: its client's packages cost a lean agent
// about 10 MB of RSS even when no containerd is configured (Go runs the
// init of every linked package), so wasm-only devices may build without it.

const (
	defaultContainerdAddress   = containerd.DefaultAddress
	defaultContainerdNamespace = containerd.DefaultNamespace
)

// validateContainerd checks the containerd settings.
func (c *Config) validateContainerd() error { return c.containerdConfig().Validate() }

// containerdConfig is the runc runtime's configuration: its containers are
// labelled with the node's name, so an agent restarted after a crash removes
// the ones it left.
func (c *Config) containerdConfig() containerd.Config {
	return containerd.Config{Address: c.ContainerdAddress, Namespace: c.ContainerdNamespace, Snapshotter: c.ContainerdSnapshotter, Owner: c.NodeName}
}

// newImageRuntime connects to the configured containerd.
func newImageRuntime(ctx context.Context, c *Config) (ImageRuntime, error) {
	r, err := containerd.New(ctx, c.containerdConfig())
	if err != nil {
		return nil, err
	}
	return r, nil
}
