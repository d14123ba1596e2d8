package linkserver

import "testing"

// TestNATSURL: without a configured URL a node is told the host it reached
// the API at, with the NATS port.
func TestNATSURL(t *testing.T) {
	for _, tc := range []struct {
		cfg            JoinConfig
		hostport, want string
	}{
		{JoinConfig{NATSURL: "nats://cp.example:4222", NATSPort: "4222"}, "10.0.0.7:6443", "nats://cp.example:4222"},
		{JoinConfig{NATSPort: "4222"}, "10.0.0.7:6443", "nats://10.0.0.7:4222"},
		{JoinConfig{NATSPort: "4222"}, "[fd00::7]:6443", "nats://[fd00::7]:4222"},
		{JoinConfig{NATSPort: "4222"}, "cp.example", "nats://cp.example:4222"},
	} {
		if got := natsURL(tc.cfg, tc.hostport); got != tc.want {
			t.Errorf("natsURL(%+v, %q) = %q, want %q", tc.cfg, tc.hostport, got, tc.want)
		}
	}
}
