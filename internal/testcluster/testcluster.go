// Package testcluster runs a whole control plane (controlplane/server with
// embedded etcd and NATS) in a test, on random loopback ports, until the
// test ends. It is separate from internal/testenv, which packages under the
// server import in their own tests.
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
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
	// Config is the configuration it runs with: StartWith's, but for the
	// ports it picked again (see StartWith).
	Config server.Config
	stop   func()
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

// StartWith runs a control plane with cfg until the test ends or Stop. A
// port Config found free can be taken by another test process before the
// server binds it: then it tries again with other ports for the API and
// etcd (Cluster.Config has them).
func StartWith(t testing.TB, cfg server.Config) *Cluster {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c, stop, err := start(cfg)
		if err == nil {
			var once sync.Once
			c.stop = func() {
				once.Do(func() {
					if err := stop(); err != nil {
						t.Errorf("server stopped with: %v", err)
					}
				})
			}
			t.Cleanup(c.stop)
			return c
		}
		if attempt == 5 || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
		t.Logf("%v: trying other ports", err)
		cfg.APIListen, cfg.EtcdClientListen, cfg.EtcdPeerListen = testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	}
}

// start runs a control plane with cfg until it is ready, and returns it
// with the func that stops it.
func start(cfg server.Config) (*Cluster, func() error, error) {
	s, err := server.New(cfg, nil)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		return nil, nil, fmt.Errorf("server exited before ready: %w", err)
	case <-time.After(60 * time.Second):
		cancel()
		<-done
		return nil, nil, errors.New("server not ready after 60s")
	}
	stop := func() error {
		cancel()
		return <-done
	}
	return &Cluster{URL: s.APIURL(), DataDir: cfg.DataDir, Config: cfg}, stop, nil
}
