package nodeagent

import (
	"context"
	"net"

	"github.com/wasmfleet/wasmfleet/internal/netns"
)

// dialInNetNS connects to addr (TCP) from inside the network namespace at
// nsPath: a container's, whose loopback the node cannot reach otherwise.
func dialInNetNS(ctx context.Context, nsPath, addr string) (net.Conn, error) {
	var conn net.Conn
	err := netns.Run(nsPath, func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return conn, err
}
