package testcluster

import (
	"net"
	"testing"
)

// TestStartWithTakenPort: a port taken between Config and the server's
// bind is replaced, and the cluster serves on the new one.
func TestStartWithTakenPort(t *testing.T) {
	cfg := Config(t, t.TempDir())
	l, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := StartWith(t, cfg)
	if c.Config.APIListen == cfg.APIListen {
		t.Fatalf("API listens on %s, the taken port", c.Config.APIListen)
	}
	if _, err := c.Client(t).Discovery().ServerVersion(); err != nil {
		t.Fatal(err)
	}
}
