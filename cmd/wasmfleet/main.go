// Command wasmfleet is the one binary of wasmfleet: the control plane, its
// parts on their own, and the tools around them.
package main

import (
	"log/slog"
	"os"
	// The time zone database, for CronJobs' spec.timeZone (validated by
	// the API server, read by the controller) on devices without one in
	// /usr/share/zoneinfo, as kube-apiserver and kube-controller-manager
	// embed it.
	_ "time/tzdata"

	"k8s.io/klog/v2"

	"github.com/wasmfleet/wasmfleet/internal/sigctx"
	"github.com/wasmfleet/wasmfleet/runtime/containerd/shimlog"
)

func main() {
	// containerd's shim runs this executable as the logger of the
	// containers of an agent of this binary (see containerdImages).
	shimlog.RunLoggerIfAsked(os.Args)
	// client-go logs through klog; its warnings and errors join ours on
	// stderr, its chatter (informer syncs, lease attempts) stays out. Set
	// once here: klog's logger is process-wide.
	klog.SetSlogLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, stop := sigctx.New()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
