// Command wasmfleet-containerd is the lean node agent's containerd client
// as a process of its own: wasmfleet-agent starts it when a pod of runtime
// class runc first needs it and talks to it over a unix socket it passes as
// file descriptor 3 (runtime/imagehelper). Keeping the client (gRPC and
// hundreds of protobuf types) out of the agent's process keeps a wasm-only
// node's agent about 10 MB smaller in memory.
//
// It is not meant to be run by hand. It exits when its stdin closes (the
// agent closes it, or is gone) or on SIGTERM (which the kernel also sends
// when the agent dies), after killing the containers it runs; it ignores
// SIGINT, so a Ctrl-C in the agent's terminal lets the agent stop its pods
// first.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasmfleet/wasmfleet/runtime/containerd"
	"github.com/wasmfleet/wasmfleet/runtime/containerd/shimlog"
	"github.com/wasmfleet/wasmfleet/runtime/imagehelper"
)

func main() {
	// containerd's shim runs this executable as its containers' logger.
	shimlog.RunLoggerIfAsked(os.Args)
	signal.Ignore(os.Interrupt)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stderr)
	stop()
	os.Exit(code)
}

// run serves the runtime that args configure until ctx ends or stdin
// closes, and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) int {
	fs := flag.NewFlagSet("wasmfleet-containerd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg containerd.Config
	fs.StringVar(&cfg.Address, "address", containerd.DefaultAddress, "containerd's socket")
	fs.StringVar(&cfg.Namespace, "namespace", containerd.DefaultNamespace, "containerd namespace of the images and containers")
	fs.StringVar(&cfg.Snapshotter, "snapshotter", "", "snapshotter (empty: containerd's default)")
	fs.StringVar(&cfg.Owner, "owner", "", "the node's name: labels its containers, which a later helper finds again")
	fs.StringVar(&cfg.Logger, "logger", "", "absolute path of the containers' logger (cmd/wasmfleet-logger; empty: this executable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wasmfleet-containerd: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if cfg.Logger == "" {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(stderr, "wasmfleet-containerd:", err)
			return 1
		}
		cfg.Logger = self
	}
	err := imagehelper.ServeHelper(ctx, stdin, func(ctx context.Context) (imagehelper.ImageRuntime, error) {
		return containerd.New(ctx, cfg)
	})
	if err != nil {
		fmt.Fprintln(stderr, "wasmfleet-containerd:", err)
		return 1
	}
	return 0
}
