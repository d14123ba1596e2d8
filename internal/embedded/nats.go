package embedded

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSConfig configures an embedded NATS server with JetStream.
type NATSConfig struct {
	// Listen is host:port; port 0 picks a free port.
	Listen string
	// StoreDir holds JetStream's files.
	StoreDir string
	// User and Password are the control plane's admin credentials; every
	// client must authenticate.
	User, Password string
	// Auth, when set, replaces the built-in user/password check
	// (server.Options.CustomClientAuthentication): it decides every
	// client connection and must admit the admin User itself.
	Auth server.Authentication
	// MaxPayload is the largest message (headers and data) the server
	// accepts (0: nats-server's default).
	MaxPayload int32
}

// NATS is a running embedded NATS server. Close stops it.
type NATS struct {
	s    *server.Server
	user string
	pass string
}

// StartNATS starts the server and waits until it accepts connections.
func StartNATS(c NATSConfig) (*NATS, error) {
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen %q: %w", c.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats listen %q: %w", c.Listen, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "wasmfleet",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   c.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: c.MaxPayload,
	}
	if c.Auth != nil {
		opts.CustomClientAuthentication = c.Auth
	} else {
		opts.Users = []*server.User{{Username: c.User, Password: c.Password}}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	// Its fatal errors (a port in use) would otherwise go unseen.
	fatal := make(chan string, 1)
	s.SetLoggerV2(fatalLogger(fatal), false, false, false)
	s.Start()
	for deadline := time.Now().Add(30 * time.Second); !s.ReadyForConnections(50 * time.Millisecond); {
		select {
		case msg := <-fatal:
			s.Shutdown()
			return nil, fmt.Errorf("embedded nats: %s", msg)
		default:
		}
		if time.Now().After(deadline) {
			s.Shutdown()
			return nil, fmt.Errorf("embedded nats: not ready on %s after 30s", c.Listen)
		}
	}
	return &NATS{s: s, user: c.User, pass: c.Password}, nil
}

// fatalLogger passes on the server's first fatal error and drops the rest
// of its log.
type fatalLogger chan string

func (l fatalLogger) Fatalf(format string, v ...any) {
	select {
	case l <- fmt.Sprintf(format, v...):
	default:
	}
}
func (fatalLogger) Noticef(string, ...any) {}
func (fatalLogger) Warnf(string, ...any)   {}
func (fatalLogger) Errorf(string, ...any)  {}
func (fatalLogger) Debugf(string, ...any)  {}
func (fatalLogger) Tracef(string, ...any)  {}

// URL returns the client URL with the admin credentials embedded.
func (n *NATS) URL() string {
	u := url.URL{Scheme: "nats", User: url.UserPassword(n.user, n.pass), Host: n.s.Addr().String()}
	return u.String()
}

// Server exposes the running server (for reloading users).
func (n *NATS) Server() *server.Server { return n.s }

// Close shuts the server down and waits for it.
func (n *NATS) Close() {
	n.s.Shutdown()
	n.s.WaitForShutdown()
}
