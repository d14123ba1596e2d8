package server

import (
	"net"
	"os"
	"slices"
	"testing"
)

// TestServingHosts: a listen host is the certificate's name; listening on
// every address, the machine's name and usable addresses are.
func TestServingHosts(t *testing.T) {
	if got := servingHosts("127.0.0.2"); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Errorf("servingHosts(127.0.0.2) = %q", got)
	}
	name, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"0.0.0.0", "::", ""} {
		got := servingHosts(host)
		if !slices.Contains(got, name) {
			t.Errorf("servingHosts(%q) = %q lacks the host name %q", host, got, name)
		}
		for _, h := range got[1:] {
			if ip := net.ParseIP(h); ip == nil || !ip.IsGlobalUnicast() {
				t.Errorf("servingHosts(%q) has %q, not a usable address", host, h)
			}
		}
	}
}
