package server_test

import (
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// TestServerExternalEtcdTLS: the control plane reaches an external etcd
// that serves TLS and asks for client certificates (--client-cert-auth),
// with etcd-cafile, etcd-certfile and etcd-keyfile.
func TestServerExternalEtcdTLS(t *testing.T) {
	dir := t.TempDir()
	testenv.Certs(t, dir)
	tlsInfo := transport.TLSInfo{
		CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key"),
		TrustedCAFile: filepath.Join(dir, "ca.crt"), ClientCertAuth: true,
	}

	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(dir, "etcd")
	cu, _ := url.Parse("https://" + testenv.FreeAddr(t))
	pu, _ := url.Parse("http://" + testenv.FreeAddr(t))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ClientTLSInfo = tlsInfo
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(time.Minute):
		t.Fatal("etcd not ready")
	}

	scfg := testcluster.Config(t, t.TempDir())
	scfg.EtcdEndpoints = []string{cu.String()}
	scfg.EtcdCAFile, scfg.EtcdCertFile, scfg.EtcdKeyFile = tlsInfo.TrustedCAFile, filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	c := startCluster(t, scfg)
	waitReady(t, c)
	ctx := context.Background()
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "site-tls"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clientTLS := transport.TLSInfo{CertFile: scfg.EtcdCertFile, KeyFile: scfg.EtcdKeyFile, TrustedCAFile: scfg.EtcdCAFile}
	tc, err := clientTLS.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{cu.String()}, TLS: tc, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	resp, err := ec.Get(ctx, "/registry/namespaces/site-tls", clientv3.WithKeysOnly())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("namespace not in the TLS etcd: %v %v", resp, err)
	}
}

// TestServerExternalNATSTLS: the control plane reaches an external NATS
// that serves TLS and asks for client certificates (`verify: true`), with
// nats-cafile, nats-certfile and nats-keyfile, and publishes its events
// there; without the client certificate it fails at start, saying why.
func TestServerExternalNATSTLS(t *testing.T) {
	dir := t.TempDir()
	testenv.Certs(t, dir)
	caFile, certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	natsURL := testenv.TLSNATS(t, dir)

	cfg := testcluster.Config(t, t.TempDir())
	cfg.NATSURL, cfg.NATSCAFile = natsURL, caFile
	s, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Run(ctx); err == nil || !strings.Contains(err.Error(), "nats "+natsURL) {
		t.Errorf("without a client certificate: %v, want the NATS connection's error", err)
	}

	cfg = testcluster.Config(t, t.TempDir())
	cfg.NATSURL, cfg.NATSCAFile, cfg.NATSCertFile, cfg.NATSKeyFile = natsURL, caFile, certFile, keyFile
	c := startCluster(t, cfg)
	waitReady(t, c)
	nc, err := nats.Connect(natsURL, nats.RootCAs(caFile), nats.ClientCert(certFile, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, subjects.DefaultStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"wasmfleet.events.namespaces._.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "site-nats-tls"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for nextMsg(t, cons).Subject() != "wasmfleet.events.namespaces._.site-nats-tls" {
	}
}
