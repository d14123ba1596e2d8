// Command wasmfleet-agent is the node agent alone: `wasmfleet agent` in a
// binary without the control plane, for devices. Its flags, environment
// (WASMFLEET_*) and config file are those of `wasmfleet agent`; it links
// no API server, etcd or NATS server code, and not containerd's client
// either: pods of runtime class runc run through the helper process
// wasmfleet-containerd (--containerd-helper), started when the first one
// needs it. So it is smaller on disk and in memory.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/wasmfleet/wasmfleet/internal/agentcmd"
	"github.com/wasmfleet/wasmfleet/internal/sigctx"
)

func main() {
	ctx, stop := sigctx.New()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := agentcmd.New(ctx, "wasmfleet-agent", stderr, nil)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "wasmfleet-agent:", err)
		return 1
	}
	return 0
}
