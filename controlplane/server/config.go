package server

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
)

// Config is the control plane's configuration. The zero value is not
// usable; start from Defaults.
type Config struct {
	// DataDir holds etcd and JetStream data, TLS material, the admin
	// kubeconfig, the node join token and the NATS URL file.
	DataDir string `mapstructure:"data-dir"`
	// APIListen is the HTTPS address of the Kubernetes API.
	APIListen string `mapstructure:"api-listen"`
	// NATSListen is where the embedded NATS server listens.
	NATSListen string `mapstructure:"nats-listen"`
	// EtcdClientListen and EtcdPeerListen are the embedded etcd's addresses.
	EtcdClientListen string `mapstructure:"etcd-client-listen"`
	EtcdPeerListen   string `mapstructure:"etcd-peer-listen"`
	// EtcdEndpoints, when set, use an external etcd cluster instead of the
	// embedded one.
	EtcdEndpoints []string `mapstructure:"etcd-endpoints"`
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile secure the connection to
	// an external etcd (https:// endpoints), as kube-apiserver's
	// --etcd-cafile, --etcd-certfile and --etcd-keyfile: the CA that signed
	// etcd's serving certificate (empty: the system's roots), and the
	// client certificate and key etcd asks for with --client-cert-auth.
	EtcdCAFile   string `mapstructure:"etcd-cafile"`
	EtcdCertFile string `mapstructure:"etcd-certfile"`
	EtcdKeyFile  string `mapstructure:"etcd-keyfile"`
	// NATSURL, when set, uses an external NATS (with JetStream) instead of
	// the embedded one; a user and password or a token go in the URL.
	NATSURL string `mapstructure:"nats-url"`
	// NATSCAFile, NATSCertFile and NATSKeyFile secure the connection to
	// an external NATS (tls:// URLs, or a server that asks for TLS): the
	// CA that signed its certificate (empty: the system's roots), and the
	// client certificate and key a server with `verify: true` asks for.
	NATSCAFile   string `mapstructure:"nats-cafile"`
	NATSCertFile string `mapstructure:"nats-certfile"`
	NATSKeyFile  string `mapstructure:"nats-keyfile"`
	// NATSAdvertiseURL is the NATS URL joining nodes are told to dial
	// (POST /join); empty means nats://<embedded NATS address>, with
	// 127.0.0.1 for an unspecified listen host.
	NATSAdvertiseURL string `mapstructure:"nats-advertise-url"`
	// TLSSANs are extra names and IPs for the serving certificate (the
	// API listen host, localhost and loopback are always included).
	TLSSANs []string `mapstructure:"tls-san"`
	// EventsMaxAge is how long JetStream keeps published events.
	EventsMaxAge time.Duration `mapstructure:"events-max-age"`
	// ModuleMaxSize is the largest wasm module `wasmfleet module push`
	// may store, in bytes.
	ModuleMaxSize int64 `mapstructure:"module-max-size"`
	// EventTTL is how long events (core/v1 and events.k8s.io/v1, the same
	// objects) live before etcd deletes them.
	EventTTL time.Duration `mapstructure:"event-ttl"`
	// CompactInterval is how often etcd history older than one interval is
	// compacted (never past what the event publisher has published).
	CompactInterval time.Duration `mapstructure:"compact-interval"`
	// DisableScheduler and DisableControllerManager leave the scheduler or
	// the controller manager out of `wasmfleet server` (run them apart with
	// `wasmfleet scheduler` / `wasmfleet controller-manager`, or not at all).
	DisableScheduler         bool `mapstructure:"disable-scheduler"`
	DisableControllerManager bool `mapstructure:"disable-controller-manager"`
	// SchedulerImageArchLookup lets the scheduler read container images'
	// manifests from their registries (anonymously) to keep runc pods off
	// nodes of other architectures; off, image architectures are not
	// checked (air-gapped sites).
	SchedulerImageArchLookup bool `mapstructure:"scheduler-image-arch-lookup"`
	// LeaderElect* time the Leases the scheduler and the controller
	// manager hold (kube's --leader-elect-lease-duration and friends).
	LeaderElectLeaseDuration time.Duration `mapstructure:"leader-elect-lease-duration"`
	LeaderElectRenewDeadline time.Duration `mapstructure:"leader-elect-renew-deadline"`
	LeaderElectRetryPeriod   time.Duration `mapstructure:"leader-elect-retry-period"`
	// NodeMonitorGracePeriod is how long a node may go without renewing
	// its Lease before it is marked Unknown and tainted unreachable.
	NodeMonitorGracePeriod time.Duration `mapstructure:"node-monitor-grace-period"`
	// DefaultTolerationSeconds is how long pods tolerate their node being
	// unreachable or not ready (the tolerations the API server adds to
	// pods that have none) before they are evicted.
	DefaultTolerationSeconds int64 `mapstructure:"default-toleration-seconds"`
	// TerminatedPodGCThreshold is how many finished pods (Failed or
	// Succeeded) may exist before the pod garbage collector deletes the
	// oldest, as kube-controller-manager's --terminated-pod-gc-threshold;
	// 0 or less keeps them all.
	TerminatedPodGCThreshold int `mapstructure:"terminated-pod-gc-threshold"`
	// ServiceClusterIPRange is the CIDR Services' cluster IPs come from
	// and ServiceNodePortRange the ports their node ports come from
	// (FIRST-LAST), as kube-apiserver's flags of the same names.
	ServiceClusterIPRange string `mapstructure:"service-cluster-ip-range"`
	ServiceNodePortRange  string `mapstructure:"service-node-port-range"`
	// Profiling serves Go's pprof profiles under /debug/pprof/ to admins,
	// as kube-apiserver's --profiling.
	Profiling bool `mapstructure:"profiling"`
	// Components run inside the server once the API listens (set from
	// controlplane/components.For; not a file or flag setting).
	Components []Component `mapstructure:"-"`
	// EtcdUnsafeNoFsync turns off fsync in the embedded etcd: for tests
	// and throw-away clusters only.
	EtcdUnsafeNoFsync bool `mapstructure:"etcd-unsafe-no-fsync"`
}

// Defaults returns the documented defaults (configs/server.yaml).
func Defaults() Config {
	return Config{
		DataDir:          ".wasmfleet",
		APIListen:        "127.0.0.1:6443",
		NATSListen:       "127.0.0.1:4222",
		EtcdClientListen: "127.0.0.1:2379",
		EtcdPeerListen:   "127.0.0.1:2380",
		EventsMaxAge:     24 * time.Hour,
		CompactInterval:  5 * time.Minute,
		EventTTL:         time.Hour,
		ModuleMaxSize:    128 << 20,

		LeaderElectLeaseDuration: 15 * time.Second,
		LeaderElectRenewDeadline: 10 * time.Second,
		LeaderElectRetryPeriod:   2 * time.Second,
		NodeMonitorGracePeriod:   40 * time.Second,
		DefaultTolerationSeconds: 300,
		TerminatedPodGCThreshold: 12500, // Kubernetes' default
		ServiceClusterIPRange:    apiserver.DefaultServiceCIDR.String(),
		ServiceNodePortRange:     apiserver.DefaultServiceNodePortRange.String(),
		Profiling:                true,
		SchedulerImageArchLookup: true,
	}
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir is required"))
	}
	addrs := map[string]string{"api-listen": c.APIListen}
	if len(c.EtcdEndpoints) == 0 {
		addrs["etcd-client-listen"], addrs["etcd-peer-listen"] = c.EtcdClientListen, c.EtcdPeerListen
	}
	if c.NATSURL == "" {
		addrs["nats-listen"] = c.NATSListen
	}
	for k, v := range addrs {
		if err := checkHostPort(v); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", k, v, err))
		}
	}
	for _, ep := range c.EtcdEndpoints {
		if err := checkEtcdEndpoint(ep); err != nil {
			errs = append(errs, fmt.Errorf("etcd-endpoints %q: %w", ep, err))
		}
	}
	if len(c.EtcdEndpoints) == 0 && c.EtcdCAFile+c.EtcdCertFile+c.EtcdKeyFile != "" {
		errs = append(errs, errors.New("etcd-cafile, etcd-certfile and etcd-keyfile secure an external etcd: they need etcd-endpoints"))
	}
	if (c.EtcdCertFile == "") != (c.EtcdKeyFile == "") {
		errs = append(errs, errors.New("etcd-certfile and etcd-keyfile go together"))
	}
	if c.NATSURL == "" && c.NATSCAFile+c.NATSCertFile+c.NATSKeyFile != "" {
		errs = append(errs, errors.New("nats-cafile, nats-certfile and nats-keyfile secure an external NATS: they need nats-url"))
	}
	if (c.NATSCertFile == "") != (c.NATSKeyFile == "") {
		errs = append(errs, errors.New("nats-certfile and nats-keyfile go together"))
	}
	if c.NATSURL != "" {
		if err := checkNATSURL(c.NATSURL); err != nil {
			// The URL holds credentials: the error names the key only.
			errs = append(errs, fmt.Errorf("nats-url: %w", err))
		}
	}
	if c.NATSAdvertiseURL != "" {
		if err := checkNATSURL(c.NATSAdvertiseURL); err != nil {
			errs = append(errs, fmt.Errorf("nats-advertise-url %q: %w", c.NATSAdvertiseURL, err))
		}
	}
	for _, h := range c.TLSSANs {
		if err := checkSAN(h); err != nil {
			errs = append(errs, fmt.Errorf("tls-san %q: %w", h, err))
		}
	}
	if c.EventsMaxAge <= 0 {
		errs = append(errs, fmt.Errorf("events-max-age must be positive, got %s", c.EventsMaxAge))
	}
	if c.EventTTL < time.Second {
		errs = append(errs, fmt.Errorf("event-ttl must be at least 1s, got %s", c.EventTTL))
	}
	if c.ModuleMaxSize <= 0 {
		errs = append(errs, fmt.Errorf("module-max-size must be positive, got %d", c.ModuleMaxSize))
	}
	if c.CompactInterval <= 0 {
		errs = append(errs, fmt.Errorf("compact-interval must be positive, got %s", c.CompactInterval))
	}
	if _, err := c.ServiceCIDR(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.NodePortRange(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.ValidateComponents()...)
	return errors.Join(errs...)
}

// ServiceCIDR parses ServiceClusterIPRange.
func (c *Config) ServiceCIDR() (netip.Prefix, error) {
	p, err := netip.ParsePrefix(c.ServiceClusterIPRange)
	if err == nil {
		err = apiserver.ValidateServiceCIDR(p)
	}
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("service-cluster-ip-range: %w", err)
	}
	return p, nil
}

// NodePortRange parses ServiceNodePortRange.
func (c *Config) NodePortRange() (utilnet.PortRange, error) {
	r, err := utilnet.ParsePortRange(c.ServiceNodePortRange)
	if err != nil {
		return utilnet.PortRange{}, fmt.Errorf("service-node-port-range: %w", err)
	}
	return *r, nil
}

// checkHostPort accepts HOST:PORT with a numeric port (0 picks a free one).
func checkHostPort(hostport string) error {
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

// checkEtcdEndpoint accepts what etcd's client dials: http(s)://HOST:PORT,
// HOST:PORT and unix(s)://PATH. The client takes anything else for an
// address and retries it for ever.
func checkEtcdEndpoint(ep string) error {
	scheme, rest, ok := strings.Cut(ep, "://")
	if !ok {
		return checkHostPort(ep)
	}
	switch scheme {
	case "http", "https":
		u, err := url.Parse(ep)
		if err != nil {
			return errors.Unwrap(err)
		}
		if u.Path != "" && u.Path != "/" {
			return fmt.Errorf("want %s://HOST:PORT, without a path", scheme)
		}
		return checkHostPort(u.Host)
	case "unix", "unixs":
		if rest == "" {
			return errors.New("no socket path")
		}
		return nil
	}
	return fmt.Errorf("unsupported scheme %q (want http, https, unix or unixs)", scheme)
}

// checkNATSURL accepts what nats.Connect does: a comma-separated list of
// [SCHEME://][USER:PASSWORD@]HOST[:PORT]. Errors never quote the URL,
// which may hold a password.
func checkNATSURL(list string) error {
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			// url.Error quotes the URL; its cause does not.
			return errors.Unwrap(err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("unsupported scheme %q (want nats, tls, ws or wss)", u.Scheme)
		}
		if u.Hostname() == "" {
			return errors.New("no host")
		}
		if p := u.Port(); p != "" {
			if _, err := strconv.ParseUint(p, 10, 16); err != nil {
				return fmt.Errorf("invalid port %q", p)
			}
		}
	}
	return nil
}

// checkSAN accepts what a serving certificate can name: an IP address
// ([bracketed] or not) or a DNS name, "*." wildcards included.
func checkSAN(h string) error {
	h = strings.TrimSpace(h)
	if net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")) != nil {
		return nil
	}
	name := strings.ToLower(h)
	if validation.IsDNS1123Subdomain(name) == nil || validation.IsWildcardDNS1123Subdomain(name) == nil {
		return nil
	}
	return errors.New("want a DNS name or an IP address, without scheme or port")
}
