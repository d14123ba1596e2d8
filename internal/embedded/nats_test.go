package embedded

import (
	"net"
	"strings"
	"testing"
)

// TestStartNATSPortInUse: a port in use is a clear error at once, not 30 s
// of waiting for a server that never listens.
func TestStartNATSPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n, err := StartNATS(NATSConfig{Listen: l.Addr().String(), StoreDir: t.TempDir(), User: "admin", Password: "pw"})
	if err == nil {
		n.Close()
		t.Fatal("started on a port in use")
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error %q does not say the address is in use", err)
	}
}
