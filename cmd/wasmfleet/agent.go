package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/wasmfleet/wasmfleet/internal/agentcmd"
	"github.com/wasmfleet/wasmfleet/nodeagent"
	"github.com/wasmfleet/wasmfleet/runtime/containerd"
)

// agentCmd runs a node agent: it joins the control plane at --server with
// the join token, then works over its one NATS connection. The lean
// cmd/wasmfleet-agent binary runs the same command, with containerd's
// client in a helper process; this binary links the client anyway (for
// the control plane's tools), so its agents run it in process.
func agentCmd(ctx context.Context, stderr io.Writer) *cobra.Command {
	return agentcmd.New(ctx, "agent", stderr, containerdImages)
}

// containerdImages is the nodeagent.ImageRuntimeFactory of this binary's
// agents: containerd's client in process. Its containers are labelled with
// the node's name, so an agent that restarts finds them again. Their
// logger is wasmfleet-logger, else this executable (see main).
func containerdImages(ctx context.Context, cfg nodeagent.Config, log *slog.Logger) (nodeagent.ImageRuntime, error) {
	logger := nodeagent.ContainerdLogger(cfg, log)
	if logger == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		logger = self
	}
	return containerd.New(ctx, containerd.Config{Address: cfg.ContainerdAddress, Namespace: cfg.ContainerdNamespace,
		Snapshotter: cfg.ContainerdSnapshotter, Owner: cfg.NodeName, Logger: logger})
}
