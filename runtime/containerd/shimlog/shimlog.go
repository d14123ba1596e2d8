// Package shimlog is the logger of runtime/containerd's detached
// containers: containerd's shim runs it (its binary log driver) for each
// container, and it writes the container's output to the container's log
// file in nodeagent/podlogs' format. It imports none of containerd's client,
// so that cmd/wasmfleet-logger, the executable for it, stays a few MB in
// memory per container; the mains of wasmfleet and wasmfleet-containerd
// run it too, for nodes without wasmfleet-logger.
package shimlog

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/runtime/v2/logging"

	"github.com/wasmfleet/wasmfleet/nodeagent/podlogs"
	"github.com/wasmfleet/wasmfleet/runtime"
)

// LoggerArg marks the command line of a container's logger: containerd's
// shim runs runtime/containerd's Config.Logger as `<Logger> _WASMFLEET_CONTAINER_LOG <LogFile
// as JSON>` (its binary log driver passes a log URI's query as the
// arguments, in no set order, so all of it is one pair). The logger is the
// shim's child and lives as long as the container's output: neither the
// agent nor the helper holds the container's pipes, so the container
// outlives them.
const LoggerArg = "_WASMFLEET_CONTAINER_LOG"

// loggerDrain bounds how long a logger told to stop (SIGTERM, when the
// shim deletes the task) goes on copying output still in the pipes.
const loggerDrain = 5 * time.Second

// RunLoggerIfAsked runs a container's logger and exits when args (a
// process's os.Args) are a logger's command line, and returns otherwise.
// The mains of the binaries that serve as runtime/containerd's
// Config.Logger call it first.
func RunLoggerIfAsked(args []string) {
	if len(args) != 3 || args[1] != LoggerArg {
		return
	}
	logging.Run(func(ctx context.Context, cfg *logging.Config, ready func() error) error {
		return copyLog(ctx, args[2], cfg.Stdout, cfg.Stderr, ready)
	})
}

// copyLog copies stdout and stderr into the podlogs log that logFile (a
// runtime.LogFile as JSON) names until both end, or until loggerDrain after
// ctx ended. A log that cannot be opened is reported once and the output
// drained, so the container does not die of a broken pipe.
func copyLog(ctx context.Context, logFile string, stdout, stderr io.Reader, ready func() error) error {
	var lf runtime.LogFile
	err := json.Unmarshal([]byte(logFile), &lf)
	var l *podlogs.Log
	if err == nil {
		l, err = podlogs.Open(lf.Path, podlogs.Options{MaxFileBytes: lf.MaxFileBytes, MaxFiles: lf.MaxFiles})
	}
	out, errOut := io.Discard, io.Discard
	if err != nil {
		fmt.Fprintf(os.Stderr, "wasmfleet container logger: %v: discarding the output\n", err)
	} else {
		failed := &sync.Once{}
		out, errOut = &drainWriter{w: l.Stream("stdout"), failed: failed}, &drainWriter{w: l.Stream("stderr"), failed: failed}
	}
	if err := ready(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(out, stdout) })
	wg.Go(func() { _, _ = io.Copy(errOut, stderr) })
	copied := make(chan struct{})
	go func() {
		wg.Wait()
		close(copied)
	}()
	select {
	case <-copied:
	case <-ctx.Done():
		select {
		case <-copied:
		case <-time.After(loggerDrain):
		}
	}
	if l != nil {
		return l.Close()
	}
	return nil
}

// drainWriter writes to w until a write fails (a full disk, a rotation
// that failed), then reports it once and drops the rest: the container
// must not block on a pipe nobody reads.
type drainWriter struct {
	w      io.Writer
	failed *sync.Once // shared by a log's streams
	broken bool
}

func (d *drainWriter) Write(p []byte) (int, error) {
	if d.broken {
		return len(p), nil
	}
	if _, err := d.w.Write(p); err != nil {
		d.broken = true
		d.failed.Do(func() {
			fmt.Fprintf(os.Stderr, "wasmfleet container logger: %v: discarding the output from here\n", err)
		})
	}
	return len(p), nil
}
