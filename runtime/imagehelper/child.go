package imagehelper

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
)

// ServeHelper is the helper process's body: it serves the runtime that
// open returns on the listening socket its parent passed as file
// descriptor 3 (see Helper), until ctx ends or stdin reaches its end (the
// parent closed it, or is gone), then detaches the runtime: its containers
// run on. Errors of open (containerd unreachable, say) are returned
// before anything is served: the parent reads them from stderr.
func ServeHelper(ctx context.Context, stdin io.Reader, open func(context.Context) (ImageRuntime, error)) error {
	f := os.NewFile(3, "listener")
	if f == nil {
		return fmt.Errorf("no file descriptor 3: this helper is started by the node agent, which passes it its socket")
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("file descriptor 3 is not a listening socket (this helper is started by the node agent, which passes it one): %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The read ends with the process if stdin never closes; nothing else
	// waits for it.
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	rt, err := open(ctx)
	if err != nil {
		ln.Close()
		return err
	}
	return Serve(ctx, ln, rt)
}
