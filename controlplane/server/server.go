// Package server assembles the control plane: etcd (embedded or external),
// NATS with JetStream (embedded or external), the cluster's TLS material,
// the API server over HTTPS, the etcd → NATS event publisher and the
// compactor. It owns their start order, readiness and shutdown, and the
// files it writes into the data dir (kubeconfig.yaml, node-token,
// nats-url).
package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
	"github.com/wasmfleet/wasmfleet/controlplane/apiserver/validation"
	"github.com/wasmfleet/wasmfleet/controlplane/events"
	"github.com/wasmfleet/wasmfleet/controlplane/modules"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink/linkserver"
	"github.com/wasmfleet/wasmfleet/controlplane/pki"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
	"github.com/wasmfleet/wasmfleet/internal/dirlock"
	"github.com/wasmfleet/wasmfleet/internal/embedded"
	"github.com/wasmfleet/wasmfleet/internal/slogzap"
)

// Files the server writes into its data dir.
const (
	KubeconfigFile = "kubeconfig.yaml"
	NodeTokenFile  = "node-token"
	NATSURLFile    = "nats-url"
	// lockFile keeps a second server off the data dir.
	lockFile = "server.lock"
)

// Server is a control plane. Run it once.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ready chan struct{}
	// apiURL is set before ready closes.
	apiURL atomic.Value
}

// New checks cfg and returns a Server ready to Run.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, ready: make(chan struct{})}, nil
}

// Ready is closed once the API serves requests.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// APIURL is the API's https URL; valid after Ready.
func (s *Server) APIURL() string { u, _ := s.apiURL.Load().(string); return u }

// Run starts everything and blocks until ctx ends or a part fails, then
// stops everything it started. Ended by ctx, even while it starts, it
// returns nil.
func (s *Server) Run(ctx context.Context) error {
	err := s.run(ctx)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (s *Server) run(ctx context.Context) error {
	cfg := s.cfg
	serviceCIDR, err := cfg.ServiceCIDR()
	if err != nil {
		return err
	}
	nodePorts, err := cfg.NodePortRange()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// etcd would wait for its database's lock without a word.
	lock, err := dirlock.Dir(cfg.DataDir, lockFile, "wasmfleet server", 2*time.Second)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	defer lock.Close()
	// A failed start returns early: cancel stops what was started so far.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)

	etcd, err := s.startEtcd(ctx, g)
	if err != nil {
		return err
	}
	defer etcd.close()
	nc, link, closeNATS, err := s.startNATS()
	if err != nil {
		return err
	}
	defer closeNATS()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	apiHost, _, _ := net.SplitHostPort(cfg.APIListen)
	bundle, err := pki.LoadOrCreate(pki.Options{Dir: cfg.DataDir, Hosts: append(servingHosts(apiHost), cfg.TLSSANs...)})
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	store := storage.NewWithKV(etcd.client, etcd.kv).WithMetrics(reg)
	public := map[string]http.Handler{"/cacerts": bundle.CACertsHandler()}
	if link.auth != nil {
		// Node joins need the embedded NATS: its authenticator admits the
		// credentials /join issues.
		link.auth.SetStore(store)
		join, err := linkserver.JoinHandler(linkserver.JoinConfig{IsJoinToken: bundle.IsJoinToken, Store: store, NATSURL: link.url, NATSPort: link.port, Logger: s.log})
		if err != nil {
			return err
		}
		public[nodelink.JoinPath] = join
	}
	// A new stream starts at revision 1: the bootstrap objects are events too.
	publisher, err := events.NewPublisher(events.Config{Etcd: etcd.client, Watcher: etcd.watcher, JetStream: js, MaxAge: cfg.EventsMaxAge, StartRevision: 1, Logger: s.log, Metrics: reg})
	if err != nil {
		return err
	}
	mods, err := modules.New(ctx, js, modules.Options{TempDir: filepath.Join(cfg.DataDir, "tmp"), MaxModuleSize: cfg.ModuleMaxSize})
	if err != nil {
		return err
	}
	// kubectl logs: the API server asks the pod's agent over NATS.
	podLogs, err := linkserver.NewPodLogs(nodelink.LogClientConfig{Conn: nc})
	if err != nil {
		return err
	}
	api, err := apiserver.New(apiserver.Config{
		Store:                    store,
		Authenticate:             authenticator(bundle),
		ReadyChecks:              readiness(store, nc, publisher),
		Metrics:                  reg,
		Public:                   public,
		Extra:                    extraAPIs(cfg, mods),
		Logger:                   s.log,
		EventTTL:                 cfg.EventTTL,
		PodLogs:                  podLogs,
		DefaultTolerationSeconds: cfg.DefaultTolerationSeconds,
		ServiceCIDR:              serviceCIDR,
		ServiceNodePortRange:     nodePorts,
	})
	if err != nil {
		return err
	}
	if err := bootstrap(ctx, api); err != nil {
		return err
	}
	var nodeAPI *linkserver.Service
	if link.auth != nil {
		// Nodes call the API over their NATS connection (embedded NATS only, like /join).
		if nodeAPI, err = linkserver.NewService(linkserver.ServiceConfig{Conn: nc, API: api.Do, Logger: s.log}); err != nil {
			return err
		}
	}

	l, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	// The port listened on: the configured one may be 0.
	clientHost := apiHost
	if isUnspecified(apiHost) {
		clientHost = "127.0.0.1"
	}
	apiURL := "https://" + net.JoinHostPort(clientHost, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	srv := &http.Server{
		Handler:           api,
		TLSConfig:         bundle.ServerTLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if err := pki.WriteKubeconfig(filepath.Join(cfg.DataDir, KubeconfigFile), apiURL, bundle.CACertPEM, "admin", bundle.AdminToken); err != nil {
		return err
	}
	serveUntilDone(ctx.Done(), g, srv, "api server", func() error { return srv.ServeTLS(coalescingListener{l}, "", "") })
	g.Go(func() error { return publisher.Run(ctx) })
	g.Go(func() error { return api.Run(ctx) })
	if nodeAPI != nil {
		g.Go(func() error { return nodeAPI.Run(ctx) })
	}
	g.Go(func() error { return compactor(ctx, store, publisher, cfg.CompactInterval, s.log) })
	g.Go(func() error { return keepSystemObjects(ctx, api, l.Addr().(*net.TCPAddr).Port, s.log) })
	// The scheduler and the controller manager are API clients like any
	// other, with admin credentials; in this process they reach the API
	// over in-memory connections (plain HTTP/1.1): TLS, HTTP/2 framing and
	// loopback TCP on both ends cost as much CPU as their requests' work.
	mem := newMemListener()
	msrv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	// It stops only after the components: stopping, they release their
	// leader leases through it, so that the next start need not wait for
	// the leases to expire.
	componentsDone := make(chan struct{})
	serveUntilDone(componentsDone, g, msrv, "in-process api server", func() error { return msrv.Serve(mem) })
	// Idle connections are kept for the concurrency the components reach
	// (a ReplicaSet's slow-start batch of 256 creates, the scheduler's
	// binders), so that bursts do not open and drop connections.
	loopback := &rest.Config{Host: "http://in-process", BearerToken: bundle.AdminToken,
		Transport: &http.Transport{
			DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return mem.DialContext(ctx) },
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		}}
	var components sync.WaitGroup
	for _, c := range cfg.Components {
		components.Add(1)
		g.Go(func() error {
			defer components.Done()
			if err := c.Run(ctx, loopback, s.log.With("component", c.Name)); err != nil {
				return fmt.Errorf("%s: %w", c.Name, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-ctx.Done()
		components.Wait()
		close(componentsDone)
		return nil
	})

	s.apiURL.Store(apiURL)
	close(s.ready)
	s.log.Info("control plane running", "api", apiURL, "kubeconfig", filepath.Join(cfg.DataDir, KubeconfigFile))
	return g.Wait()
}

// etcdConn is the control plane's connection to etcd: its client, the
// KV service the store's writes go to and the event publisher's watcher
// (nil: the client's).
type etcdConn struct {
	client  *clientv3.Client
	kv      pb.KVClient
	watcher clientv3.Watcher
	close   func()
}

// etcdTLS is the TLS configuration of the connection to the external etcd:
// nil without etcd-cafile, etcd-certfile and etcd-keyfile (https://
// endpoints then trust the system's roots).
func (s *Server) etcdTLS() (*tls.Config, error) {
	info := transport.TLSInfo{TrustedCAFile: s.cfg.EtcdCAFile, CertFile: s.cfg.EtcdCertFile, KeyFile: s.cfg.EtcdKeyFile}
	if info.Empty() && info.TrustedCAFile == "" {
		return nil, nil
	}
	tc, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: %w", err)
	}
	return tc, nil
}

// startEtcd connects to the external etcd or starts the embedded one. With
// the embedded etcd, writes and the event publisher's watch call the server
// in process.
func (s *Server) startEtcd(ctx context.Context, g *errgroup.Group) (etcdConn, error) {
	if len(s.cfg.EtcdEndpoints) > 0 {
		// etcd's client logs its warnings (retries, lost endpoints) with
		// zap; they come out with ours.
		lg := slogzap.New(s.log.With("component", "etcd-client"), zapcore.WarnLevel)
		tc, err := s.etcdTLS()
		if err != nil {
			return etcdConn{}, err
		}
		c, err := clientv3.New(clientv3.Config{Endpoints: s.cfg.EtcdEndpoints, TLS: tc, DialTimeout: 10 * time.Second, Context: ctx, Logger: lg})
		if err != nil {
			return etcdConn{}, fmt.Errorf("etcd %v: %w", s.cfg.EtcdEndpoints, err)
		}
		// Requests wait for etcd without a word; say why nothing happens.
		for {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := c.Get(rctx, "health")
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				c.Close()
				return etcdConn{}, ctx.Err()
			}
			s.log.Warn("waiting for etcd", "endpoints", s.cfg.EtcdEndpoints, "err", err)
		}
		return etcdConn{client: c, kv: clientv3.RetryKVClient(c), close: func() { c.Close() }}, nil
	}
	e, err := embedded.StartEtcd(ctx, embedded.EtcdConfig{
		Dir:           filepath.Join(s.cfg.DataDir, "etcd"),
		ClientListen:  s.cfg.EtcdClientListen,
		PeerListen:    s.cfg.EtcdPeerListen,
		UnsafeNoFsync: s.cfg.EtcdUnsafeNoFsync,
		// Its errors only: its warnings (slow fsyncs, slow applies)
		// repeat under load and say what its metrics say.
		Logger: slogzap.New(s.log.With("component", "etcd"), zapcore.ErrorLevel),
	})
	if err != nil {
		return etcdConn{}, err
	}
	g.Go(func() error {
		select {
		case err := <-e.Err():
			return fmt.Errorf("embedded etcd: %w", err)
		case <-ctx.Done():
			return nil
		}
	})
	c, err := e.Client()
	if err != nil {
		e.Close()
		return etcdConn{}, err
	}
	w := e.LocalWatcher(c)
	return etcdConn{client: c, kv: e.KV(), watcher: w, close: func() { w.Close(); c.Close(); e.Close() }}, nil
}

// nodeLink is what node joins need from the embedded NATS: its
// authenticator (nil with an external NATS) and the URL nodes dial, or,
// for a NATS listening on every address, its port (each node then dials
// the host it reached the API at).
type nodeLink struct {
	auth *linkserver.NATSAuth
	url  string
	port string
}

// EmbeddedNATSMaxPayload is the embedded NATS server's max_payload. It
// exceeds the largest request etcd takes (its --max-request-bytes, 1.5 MiB
// by default and in the embedded etcd), which bounds every stored object
// and its key, so each change reaches the events stream with its payload.
// With nats-server's default, 1 MiB, an object between the two was
// published without it (Wasmfleet-Payload-Omitted). An external NATS keeps
// its operator's max_payload.
const EmbeddedNATSMaxPayload = 2 << 20

// startNATS connects to the external NATS or starts the embedded one, and
// writes DIR/nats-url (0600) either way.
func (s *Server) startNATS() (*nats.Conn, nodeLink, func(), error) {
	urlFile := filepath.Join(s.cfg.DataDir, NATSURLFile)
	if s.cfg.NATSURL != "" {
		opts := []nats.Option{nats.Name("wasmfleet-control-plane"), nats.MaxReconnects(-1)}
		if s.cfg.NATSCAFile != "" {
			opts = append(opts, nats.RootCAs(s.cfg.NATSCAFile))
		}
		if s.cfg.NATSCertFile != "" {
			opts = append(opts, nats.ClientCert(s.cfg.NATSCertFile, s.cfg.NATSKeyFile))
		}
		nc, err := nats.Connect(s.cfg.NATSURL, opts...)
		if err != nil {
			return nil, nodeLink{}, nil, fmt.Errorf("nats %s: %w", redact(s.cfg.NATSURL), err)
		}
		if err := writeSecret(urlFile, s.cfg.NATSURL); err != nil {
			nc.Close()
			return nil, nodeLink{}, nil, err
		}
		return nc, nodeLink{}, nc.Close, nil
	}
	password, err := natsPassword(urlFile)
	if err != nil {
		return nil, nodeLink{}, nil, err
	}
	// The admin, and nodes with the credentials /join issues (the store
	// is supplied once it exists).
	auth := linkserver.NewNATSAuth(linkserver.NATSAuthConfig{AdminUser: "admin", AdminPassword: password, Logger: s.log})
	ns, err := embedded.StartNATS(embedded.NATSConfig{
		Listen:     s.cfg.NATSListen,
		StoreDir:   filepath.Join(s.cfg.DataDir, "nats"),
		User:       "admin",
		Password:   password,
		Auth:       auth,
		MaxPayload: EmbeddedNATSMaxPayload,
	})
	if err != nil {
		return nil, nodeLink{}, nil, err
	}
	nc, err := nats.Connect(ns.URL(), nats.Name("wasmfleet-control-plane"), nats.InProcessServer(ns.Server()))
	if err != nil {
		ns.Close()
		return nil, nodeLink{}, nil, fmt.Errorf("connect embedded nats: %w", err)
	}
	if err := writeSecret(urlFile, ns.URL()); err != nil {
		nc.Close()
		ns.Close()
		return nil, nodeLink{}, nil, err
	}
	link := nodeLink{auth: auth, url: s.cfg.NATSAdvertiseURL}
	if link.url == "" {
		host, port, _ := net.SplitHostPort(ns.Server().Addr().String())
		if isUnspecified(host) {
			link.port = port
		} else {
			link.url = "nats://" + net.JoinHostPort(host, port)
		}
	}
	return nc, link, func() { nc.Close(); ns.Close() }, nil
}

func isUnspecified(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// servingHosts are the names the API's certificate covers for a listen
// host: that host or, for every address, as k3s does, the machine's name
// and its addresses (but loopback and link-local ones, which pki always
// adds or nodes cannot use), so that nodes on other machines verify it.
func servingHosts(listenHost string) []string {
	if !isUnspecified(listenHost) {
		return []string{listenHost}
	}
	var hosts []string
	if name, err := os.Hostname(); err == nil {
		hosts = append(hosts, name)
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			hosts = append(hosts, n.IP.String())
		}
	}
	return hosts
}

// natsPassword reuses the admin password of an earlier start (from
// nats-url) so tools holding the file keep working.
func natsPassword(urlFile string) (string, error) {
	if b, err := os.ReadFile(urlFile); err == nil {
		if u, err := url.Parse(strings.TrimSpace(string(b))); err == nil {
			if p, ok := u.User.Password(); ok && u.User.Username() == "admin" {
				return p, nil
			}
		}
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(buf), nil
}

// writeSecret writes content to path (0600), unless path holds it already:
// tools may watch the file.
func writeSecret(path, content string) error {
	data := []byte(content + "\n")
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() == 0o600 {
		if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, data) {
			return nil
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<invalid url>"
	}
	return p.Redacted()
}

func authenticator(b *pki.Bundle) func(string) (apiserver.User, bool) {
	return func(tok string) (apiserver.User, bool) {
		if b.IsAdminToken(tok) {
			return apiserver.User{Name: "admin", Groups: []string{apiserver.Admin, "system:authenticated"}}, true
		}
		return apiserver.User{}, false
	}
}

// readiness returns the checks of /readyz: etcd answers, NATS is
// connected, the event publisher has caught up.
func readiness(store *storage.Store, nc *nats.Conn, pub *events.Publisher) []apiserver.Check {
	return []apiserver.Check{
		{Name: "etcd", Check: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := store.CurrentRev(ctx)
			return err
		}},
		{Name: "nats", Check: func(context.Context) error {
			if !nc.IsConnected() {
				return errors.New("not connected")
			}
			return nil
		}},
		{Name: "event-publisher", Check: func(context.Context) error {
			if !pub.Ready() {
				return errors.New("not caught up")
			}
			return nil
		}},
	}
}

// bootstrap creates what every cluster has from the start.
func bootstrap(ctx context.Context, api *apiserver.Server) error {
	if err := ensureSystemNamespaces(ctx, api); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	// Nodes label the runtimes they offer (runtime.wasmfleet.io/<handler>=true);
	// the scheduler places pods of a class only there.
	for _, rc := range []string{"wasm", "runc"} {
		o := &nodev1.RuntimeClass{TypeMeta: metav1.TypeMeta{Kind: "RuntimeClass", APIVersion: "node.k8s.io/v1"}, ObjectMeta: metav1.ObjectMeta{Name: rc}, Handler: rc,
			Scheduling: &nodev1.Scheduling{NodeSelector: map[string]string{"runtime.wasmfleet.io/" + rc: "true"}}}
		if err := api.Ensure(ctx, o); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	for _, pc := range validation.SystemPriorityClasses() {
		pc.TypeMeta = metav1.TypeMeta{Kind: "PriorityClass", APIVersion: "scheduling.k8s.io/v1"}
		if err := api.Ensure(ctx, pc); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	return nil
}

// systemObjectsInterval is how often keepSystemObjects looks, as
// kube-apiserver's system namespaces controller does.
var systemObjectsInterval = time.Minute

func ensureSystemNamespaces(ctx context.Context, api *apiserver.Server) error {
	for _, ns := range []string{"default", "kube-system", "kube-public", apiserver.NodeLeaseNamespace} {
		if err := api.Ensure(ctx, &corev1.Namespace{TypeMeta: metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	return nil
}

// keepSystemObjects keeps the Service default/kubernetes (to the API's
// port apiPort, see EnsureKubernetesService) and the system namespaces,
// creating them again when they are gone: the API refuses to delete
// default, kube-system and kube-public, not kube-node-lease (nor does
// Kubernetes), which the nodes' leases need.
func keepSystemObjects(ctx context.Context, api *apiserver.Server, apiPort int, log *slog.Logger) error {
	t := time.NewTicker(systemObjectsInterval)
	defer t.Stop()
	for {
		err := ensureSystemNamespaces(ctx, api)
		if err == nil {
			err = api.EnsureKubernetesService(ctx, apiPort)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("system objects", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// compactor compacts etcd history older than one interval, never past
// what the event publisher has published (it needs that history to resume).
func compactor(ctx context.Context, store *storage.Store, pub *events.Publisher, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	var prev int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cur, err := store.CurrentRev(ctx)
		if err != nil {
			log.Warn("compactor: read revision", "err", err)
			continue
		}
		target := min(prev, pub.PublishedRevision())
		if target > 0 {
			if err := store.Compact(ctx, target); err != nil {
				log.Warn("compactor", "revision", target, "err", err)
			}
		}
		prev = cur
	}
}

// extraAPIs are the admin-only paths beside the Kubernetes resources: the
// module store and, when cfg.Profiling, Go's pprof handlers.
func extraAPIs(cfg Config, mods *modules.Store) map[string]func(http.ResponseWriter, *http.Request) error {
	extra := map[string]func(http.ResponseWriter, *http.Request) error{modules.PathPrefix: modules.Handler(mods)}
	if cfg.Profiling {
		extra["/debug/pprof/"] = func(w http.ResponseWriter, r *http.Request) error {
			switch name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name {
			case "":
				pprof.Index(w, r)
			case "cmdline":
				pprof.Cmdline(w, r)
			case "profile":
				pprof.Profile(w, r)
			case "symbol":
				pprof.Symbol(w, r)
			case "trace":
				pprof.Trace(w, r)
			default:
				pprof.Handler(name).ServeHTTP(w, r)
			}
			return nil
		}
	}
	return extra
}

// serveUntilDone runs serve (srv's Serve or ServeTLS) in g, and shuts srv
// down, with 5 s for the requests in flight, when stop is closed.
func serveUntilDone(stop <-chan struct{}, g *errgroup.Group, srv *http.Server, name string, serve func() error) {
	g.Go(func() error {
		if err := serve(); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	g.Go(func() error {
		<-stop
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		return nil
	})
}
