// Package testcluster runs a whole control plane (controlplane/server with
// embedded etcd and NATS) in a test, on random loopback ports, until the
// test ends. It is separate from internal/testenv, which packages under the
// server import in their own tests.
package testcluster

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// Cluster is a running control plane.
type Cluster struct {
	// URL is the API's https URL; DataDir holds kubeconfig.yaml,
	// node-token and nats-url.
	URL, DataDir string
	stop         func()
}

// Kubeconfig is the admin kubeconfig's path.
func (c *Cluster) Kubeconfig() string { return filepath.Join(c.DataDir, server.KubeconfigFile) }

// NodeToken is the node join token file's path.
func (c *Cluster) NodeToken() string { return filepath.Join(c.DataDir, server.NodeTokenFile) }

// RESTConfig is the admin client configuration (client-go's default rate
// limits lifted, as controllers under test would otherwise crawl).
func (c *Cluster) RESTConfig(t testing.TB) *rest.Config {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = 1000, 2000
	return rc
}

// Client is an admin clientset for the cluster.
func (c *Cluster) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Stop stops the control plane before the test ends (again: no-op).
func (c *Cluster) Stop() { c.stop() }

// Config is a server configuration for dir on free loopback ports, etcd
// fsync off, with no components: no scheduler, no controller manager
// (tests of those run their own; set cfg.Components =
// components.For(cfg) for a whole control plane).
func Config(t testing.TB, dir string) server.Config {
	cfg := server.Defaults()
	cfg.DataDir = dir
	cfg.APIListen = testenv.FreeAddr(t)
	cfg.NATSListen = "127.0.0.1:0"
	cfg.EtcdClientListen = testenv.FreeAddr(t)
	cfg.EtcdPeerListen = testenv.FreeAddr(t)
	cfg.EtcdUnsafeNoFsync = true
	return cfg
}

// Start runs a control plane in a new data dir until the test ends.
func Start(t testing.TB) *Cluster { return StartWith(t, Config(t, t.TempDir())) }

// StartWith runs a control plane with cfg until the test ends or Stop.
func StartWith(t testing.TB, cfg server.Config) *Cluster {
	t.Helper()
	s, err := server.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("server exited before ready: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("server not ready after 60s")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server stopped with: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &Cluster{URL: s.APIURL(), DataDir: cfg.DataDir, stop: stop}
}
