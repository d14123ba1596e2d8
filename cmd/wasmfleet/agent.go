package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/wasmfleet/wasmfleet/internal/agentcmd"
)

// agentCmd runs a node agent: it joins the control plane at --server with
// the join token, then works over its one NATS connection. The lean
// cmd/wasmfleet-agent binary runs the same command.
func agentCmd(ctx context.Context, stderr io.Writer) *cobra.Command {
	return agentcmd.New(ctx, "agent", stderr)
}
