// Package sigctx is the commands' handling of SIGINT and SIGTERM, as
// Kubernetes' components handle them: the first ends the context, so the
// command shuts down cleanly; a second exits at once, for a shutdown that
// takes too long.
package sigctx

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// exit is os.Exit (tests replace it).
var exit = os.Exit

// New returns a context that ends at the first SIGINT or SIGTERM; at the
// second the process exits with status 1, saying so on stderr. stop
// releases the signals.
func New() (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "%v again: exiting without finishing the shutdown\n", s)
			exit(1)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
