package linkserver

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// NATSAuthConfig configures [NewNATSAuth].
type NATSAuthConfig struct {
	// AdminUser and AdminPassword are the control plane's credentials; they
	// get full access.
	AdminUser, AdminPassword string
	// Store reads node credentials. It may be nil until SetStore is called;
	// until then only the admin is admitted.
	Store *storage.Store
	// Timeout bounds one credential read from etcd (default 5s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// NATSAuth is a nats-server custom client authentication
// (server.Options.CustomClientAuthentication): it admits the admin with
// full permissions, and node "node:<name>" with the secret of its current
// credential (read from etcd on every connect, so a rotation takes effect
// for the next connection at once) with [NodePermissions]. Everyone else
// is refused. Safe for concurrent use.
type NATSAuth struct {
	cfg   NATSAuthConfig
	log   *slog.Logger
	creds credentials
	ready chan struct{}
}

// NewNATSAuth returns the authenticator.
func NewNATSAuth(cfg NATSAuthConfig) *NATSAuth {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &NATSAuth{cfg: cfg, log: log, creds: credentials{now: time.Now}, ready: make(chan struct{})}
	if cfg.Store != nil {
		a.creds.store = cfg.Store
		close(a.ready)
	}
	return a
}

// SetStore supplies the store when it exists only after the NATS server
// started. Call it at most once, and only when the config had none.
func (a *NATSAuth) SetStore(s *storage.Store) {
	a.creds.store = s
	close(a.ready)
}

var _ server.Authentication = (*NATSAuth)(nil)

// Check implements server.Authentication.
func (a *NATSAuth) Check(c server.ClientAuthentication) bool {
	if c.Kind() != server.CLIENT {
		return false
	}
	o := c.GetOpts()
	if o == nil || o.Token != "" || o.Nkey != "" || o.JWT != "" {
		return false
	}
	if o.Username == a.cfg.AdminUser {
		if a.cfg.AdminPassword != "" && subtle.ConstantTimeCompare([]byte(o.Password), []byte(a.cfg.AdminPassword)) == 1 {
			c.RegisterUser(&server.User{Username: o.Username})
			return true
		}
		return false
	}
	node, ok := strings.CutPrefix(o.Username, nodelink.UserPrefix)
	if !ok || o.Password == "" || len(validation.IsDNS1123Subdomain(node)) > 0 {
		return false
	}
	select {
	case <-a.ready:
	default:
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Timeout)
	defer cancel()
	ok, err := a.creds.verify(ctx, node, o.Password)
	if err != nil {
		a.log.Warn("nats: node credential check failed", "node", node, "err", err)
	}
	if !ok {
		return false
	}
	c.RegisterUser(&server.User{Username: o.Username, Permissions: NodePermissions(node)})
	return true
}
