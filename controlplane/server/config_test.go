package server_test

import (
	"strings"
	"testing"

	"github.com/wasmfleet/wasmfleet/controlplane/server"
)

// TestMalformedAddressesAreRefused: listen addresses, external endpoints,
// URLs and serving certificate names are checked before anything starts (a
// bad port failed only once etcd and NATS ran, a malformed etcd endpoint
// was retried for ever, a --tls-san with a port went into the certificate
// as a name), and a malformed nats-url's password stays out of the error.
func TestMalformedAddressesAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*server.Config)
		want string
	}{
		{"api port out of range", func(c *server.Config) { c.APIListen = "127.0.0.1:99999" }, `api-listen "127.0.0.1:99999": invalid port`},
		{"negative nats port", func(c *server.Config) { c.NATSListen = "127.0.0.1:-1" }, `nats-listen "127.0.0.1:-1": invalid port`},
		{"etcd port not a number", func(c *server.Config) { c.EtcdPeerListen = "127.0.0.1:abc" }, `etcd-peer-listen "127.0.0.1:abc": invalid port`},
		{"etcd endpoint", func(c *server.Config) { c.EtcdEndpoints = []string{"not-a-url::x"} }, `etcd-endpoints "not-a-url::x"`},
		{"etcd endpoint without port", func(c *server.Config) { c.EtcdEndpoints = []string{"http://etcd-1"} }, `etcd-endpoints "http://etcd-1": address etcd-1: missing port`},
		{"etcd endpoint scheme", func(c *server.Config) { c.EtcdEndpoints = []string{"etcd://etcd-1:2379"} }, `etcd-endpoints "etcd://etcd-1:2379": unsupported scheme`},
		{"nats url", func(c *server.Config) { c.NATSURL = "nats://admin:s3cret@nats-1:bad" }, `nats-url: invalid port ":bad" after host`},
		{"nats url in a list", func(c *server.Config) {
			c.NATSURL = "nats://admin:s3cret@nats-1:4222, nats://admin:s3cret@nats-2:70000"
		}, `nats-url: invalid port "70000"`},
		{"nats url scheme", func(c *server.Config) { c.NATSURL = "http://admin:s3cret@nats-1:4222" }, `nats-url: unsupported scheme "http"`},
		{"tls-san with a port", func(c *server.Config) { c.TLSSANs = []string{"cp.example.com:6443"} }, `tls-san "cp.example.com:6443": want a DNS name or an IP address`},
		{"tls-san url", func(c *server.Config) { c.TLSSANs = []string{"https://cp.example.com"} }, `tls-san "https://cp.example.com"`},
		{"etcd TLS without an external etcd", func(c *server.Config) { c.EtcdCAFile = "/etc/etcd/ca.crt" }, "they need etcd-endpoints"},
		{"etcd client cert without its key", func(c *server.Config) {
			c.EtcdEndpoints, c.EtcdCertFile = []string{"https://etcd-1:2379"}, "/etc/etcd/client.crt"
		}, "etcd-certfile and etcd-keyfile go together"},
		{"nats TLS without an external NATS", func(c *server.Config) { c.NATSCAFile = "/etc/nats/ca.crt" }, "they need nats-url"},
		{"nats client cert without its key", func(c *server.Config) {
			c.NATSURL, c.NATSCertFile = "tls://nats-1:4222", "/etc/nats/client.crt"
		}, "nats-certfile and nats-keyfile go together"},
		{"nats advertise url", func(c *server.Config) { c.NATSAdvertiseURL = "nats://:4222" }, `nats-advertise-url "nats://:4222": no host`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := server.Defaults()
			cfg.DataDir = t.TempDir()
			tc.set(&cfg)
			_, err := server.New(cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	// What etcd's client and nats.Connect take stays accepted.
	cfg := server.Defaults()
	cfg.APIListen, cfg.NATSListen = "[::]:0", ":4222"
	cfg.EtcdEndpoints = []string{"http://10.0.0.1:2379", "https://etcd-2:2379/", "etcd-3:2379", "unix:///run/etcd.sock"}
	cfg.NATSURL = "nats://admin:s3cret@nats-1:4222,tls://nats-2,nats-3:4222"
	cfg.NATSAdvertiseURL = "nats://cp.example.com:4222"
	cfg.TLSSANs = []string{"cp.example.com", "CP-2.Example.com", "*.edge.example.com", "10.0.0.1", "fd00::1", "[fd00::2]", "localhost"}
	if _, err := server.New(cfg, nil); err != nil {
		t.Errorf("New: %v", err)
	}
}
