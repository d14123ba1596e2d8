package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
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
	ca, caKey := issue(t, dir, "ca", nil, nil, func(c *x509.Certificate) {
		c.IsCA, c.BasicConstraintsValid, c.KeyUsage = true, true, x509.KeyUsageCertSign
	})
	issue(t, dir, "etcd", ca, caKey, func(c *x509.Certificate) {
		c.IPAddresses, c.ExtKeyUsage = []net.IP{net.ParseIP("127.0.0.1")}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	issue(t, dir, "client", ca, caKey, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} })
	tlsInfo := transport.TLSInfo{
		CertFile: filepath.Join(dir, "etcd.crt"), KeyFile: filepath.Join(dir, "etcd.key"),
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
	ca, caKey := issue(t, dir, "ca", nil, nil, func(c *x509.Certificate) {
		c.IsCA, c.BasicConstraintsValid, c.KeyUsage = true, true, x509.KeyUsageCertSign
	})
	issue(t, dir, "nats", ca, caKey, func(c *x509.Certificate) {
		c.IPAddresses, c.ExtKeyUsage = []net.IP{net.ParseIP("127.0.0.1")}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	issue(t, dir, "client", ca, caKey, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} })
	caFile, certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	tc, err := natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{CertFile: filepath.Join(dir, "nats.crt"), KeyFile: filepath.Join(dir, "nats.key"), CaFile: caFile, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		TLS: true, TLSVerify: true, TLSConfig: tc, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	natsURL := "tls://" + ns.Addr().String()

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

// issue writes dir/name.crt and dir/name.key: a certificate signed by
// parent (self-signed when nil), shaped by shape.
func issue(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, shape func(*x509.Certificate)) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	shape(tmpl)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for file, block := range map[string]*pem.Block{name + ".crt": {Type: "CERTIFICATE", Bytes: der}, name + ".key": {Type: "EC PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
