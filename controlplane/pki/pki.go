// Package pki owns the cluster's trust material: the cluster CA, the API
// server's serving certificate, the admin bearer token and the node join
// token. All of it lives in the server's data directory, is created on first
// start by [LoadOrCreate] and reused on every later start:
//
//	DIR/tls/ca.crt        cluster CA certificate (ECDSA P-256, 10 years)
//	DIR/tls/ca.key        CA private key                          0600
//	DIR/tls/serving.crt   API server certificate, signed by the CA
//	DIR/tls/serving.key   its private key                         0600
//	DIR/tls/admin-token   admin bearer token                      0600
//	DIR/tls/join-token    node join credential "<id>.<secret>"   0600
//	DIR/node-token        full join token K10<ca-hash>::<id>.<secret> 0600
//
// The CA and the tokens are never regenerated once present; the serving
// certificate is re-issued from the same CA whenever it no longer fits
// (a requested host is missing, it is close to expiry, or it was not signed
// by the CA). Every file is written atomically (temp file, fsync, rename),
// so a crash never leaves half a key behind.
//
// The package also holds the node side of joining: [ParseJoinToken] and
// [FetchCA] let a node agent fetch the cluster CA over an untrusted
// connection and pin it by the hash carried in the join token, and
// [WriteKubeconfig] writes kubeconfig files that embed the CA.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	tlsDirName      = "tls"
	caCertFile      = "ca.crt"
	caKeyFile       = "ca.key"
	servingCertFile = "serving.crt"
	servingKeyFile  = "serving.key"
	adminTokenFile  = "admin-token"
	joinTokenFile   = "join-token"
	nodeTokenFile   = "node-token"

	caValidity      = 10 * 365 * 24 * time.Hour
	servingValidity = 365 * 24 * time.Hour
	// servingRenewBefore: a serving certificate with less validity left than
	// this is re-issued at start-up.
	servingRenewBefore = 90 * 24 * time.Hour
	// clockSkew backdates NotBefore so devices with slightly wrong clocks
	// accept fresh certificates.
	clockSkew = time.Hour
)

// Options says where the trust material lives and what the serving
// certificate must cover.
type Options struct {
	// Dir is the server's data directory; the files go to Dir/tls and
	// Dir/node-token. It is created (0700) if missing.
	Dir string
	// Hosts are extra subject alternative names for the serving
	// certificate: IP addresses or DNS names, without ports.
	// 127.0.0.1, ::1 and localhost are always included; unspecified
	// addresses (0.0.0.0, ::) are skipped, so a listen host can be passed
	// as is, but then the machine's real addresses must be added.
	Hosts []string
}

// Bundle is the loaded trust material. It is immutable after
// [LoadOrCreate] returns and safe for concurrent use.
type Bundle struct {
	// CACertPEM is the cluster CA certificate, PEM encoded.
	CACertPEM []byte
	// CA is the parsed cluster CA certificate.
	CA *x509.Certificate
	// ServingCert is the API server's certificate and key (Leaf is set).
	ServingCert tls.Certificate
	// AdminToken is the admin user's bearer token.
	AdminToken string
	// JoinToken is the full node join token, as written to DIR/node-token.
	JoinToken string

	join JoinToken
}

// LoadOrCreate loads the trust material from opts.Dir, creating whatever is
// missing: on first start everything, later at most a new serving
// certificate (when it lacks one of the requested hosts, expires within 90
// days or was not signed by the CA) and DIR/node-token if it was removed.
//
// A present CA certificate without its key is an error, as is a token file
// that does not hold a valid token: those are never silently replaced,
// because replacing them would lock out every node and client.
// LoadOrCreate must not run concurrently on the same directory.
func LoadOrCreate(opts Options) (*Bundle, error) {
	if opts.Dir == "" {
		return nil, errors.New("pki: Options.Dir is empty")
	}
	hosts := servingHosts(opts.Hosts)
	tlsDir := filepath.Join(opts.Dir, tlsDirName)
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: create %s: %w", tlsDir, err)
	}
	now := time.Now()

	ca, caKey, err := loadOrCreateCA(tlsDir, now)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	serving, err := loadOrIssueServing(tlsDir, ca, caKey, hosts, now)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	admin, err := loadOrCreateToken(filepath.Join(tlsDir, adminTokenFile), newAdminToken, checkAdminToken)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	cred, err := loadOrCreateToken(filepath.Join(tlsDir, joinTokenFile), newJoinCredential, func(s string) error {
		_, _, err := parseCredential(s)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	id, secret, _ := parseCredential(cred)
	join := JoinToken{CAHash: caHash(ca), ID: id, Secret: secret}

	nodeTokenPath := filepath.Join(opts.Dir, nodeTokenFile)
	want := []byte(join.String() + "\n")
	if have, err := os.ReadFile(nodeTokenPath); err != nil || !bytes.Equal(have, want) {
		if err := writeFileAtomic(nodeTokenPath, want, 0o600); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
	}
	if err := tightenPerms(
		filepath.Join(tlsDir, caKeyFile),
		filepath.Join(tlsDir, servingKeyFile),
		filepath.Join(tlsDir, adminTokenFile),
		filepath.Join(tlsDir, joinTokenFile),
		nodeTokenPath,
	); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}

	return &Bundle{
		CACertPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		CA:          ca,
		ServingCert: serving,
		AdminToken:  admin,
		JoinToken:   join.String(),
		join:        join,
	}, nil
}

// ServerTLSConfig returns a new server TLS configuration that presents the
// serving certificate: TLS 1.2 or later, ALPN h2 and http/1.1. The caller
// owns the returned value.
func (b *Bundle) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.ServingCert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// CACertsHandler serves the CA certificate PEM to GET and HEAD requests on
// whatever path it is mounted at (the API server mounts it at /cacerts,
// without authentication: the CA is public, and joining nodes pin it with
// [FetchCA]).
func (b *Bundle) CACertsHandler() http.Handler {
	body := b.CACertPEM
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
}

// IsAdminToken reports whether tok is the admin bearer token, in constant
// time with respect to the token's content.
func (b *Bundle) IsAdminToken(tok string) bool {
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(b.AdminToken)) == 1
}

// IsJoinToken reports whether tok is the node join token, given either in
// full (K10<ca-hash>::<id>.<secret>, which must pin this cluster's CA) or as
// the bare "<id>.<secret>" credential. The secret is compared in constant
// time.
func (b *Bundle) IsJoinToken(tok string) bool {
	tok = strings.TrimSpace(tok)
	var id, secret string
	hashOK := 1
	if strings.HasPrefix(tok, joinTokenPrefix) {
		t, err := ParseJoinToken(tok)
		if err != nil {
			return false
		}
		id, secret = t.ID, t.Secret
		hashOK = subtle.ConstantTimeCompare([]byte(t.CAHash), []byte(b.join.CAHash))
	} else {
		var err error
		if id, secret, err = parseCredential(tok); err != nil {
			return false
		}
	}
	got := []byte(id + "." + secret)
	want := []byte(b.join.ID + "." + b.join.Secret)
	return subtle.ConstantTimeCompare(got, want)&hashOK == 1
}

// servingHosts returns the always-present hosts followed by the requested
// ones, trimmed, without brackets, duplicates and unspecified addresses.
func servingHosts(extra []string) []string {
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	for _, h := range extra {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			continue
		}
		if h != "" && !slices.ContainsFunc(hosts, func(x string) bool { return sameHost(x, h) }) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func sameHost(a, b string) bool {
	ipA, ipB := net.ParseIP(a), net.ParseIP(b)
	if ipA != nil || ipB != nil {
		return ipA.Equal(ipB)
	}
	return strings.EqualFold(a, b)
}

// caHash is the join token's pin: hex sha256 of the CA certificate DER.
func caHash(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.Raw)
	return hex.EncodeToString(sum[:])
}

func loadOrCreateCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return createCA(certPath, keyPath, now)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s exists but %s is missing: restore the key, or remove both to create a new CA (every node and kubeconfig must then be re-issued)", certPath, keyPath)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read CA key: %w", err)
	}
	ca, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	if !ca.IsCA {
		return nil, nil, fmt.Errorf("%s is not a CA certificate", certPath)
	}
	if now.After(ca.NotAfter) {
		return nil, nil, fmt.Errorf("%s expired at %s", certPath, ca.NotAfter.Format(time.RFC3339))
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	pub, ok := ca.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, nil, fmt.Errorf("%s does not match %s", keyPath, certPath)
	}
	return ca, key, nil
}

func createCA(certPath, keyPath string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: fmt.Sprintf("wasmfleet-ca@%d", now.Unix())},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	// Key first: a crash between the two writes leaves no ca.crt, so the
	// next start creates the CA again instead of finding a cert without key.
	if err := writeKeyAndCert(certPath, keyPath, der, key); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

func loadOrIssueServing(dir string, ca *x509.Certificate, caKey crypto.Signer, hosts []string, now time.Time) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, servingCertFile), filepath.Join(dir, servingKeyFile)
	if cert, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && servingFits(cert, ca, hosts, now) {
		return cert, nil
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate serving key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "wasmfleet-apiserver"},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(servingValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue serving certificate for %v: %w", hosts, err)
	}
	if err := writeKeyAndCert(certPath, keyPath, der, key); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}

// servingFits reports whether cert chains to ca, stays valid for at least
// servingRenewBefore and names every host.
func servingFits(cert tls.Certificate, ca *x509.Certificate, hosts []string, now time.Time) bool {
	leaf := cert.Leaf
	if leaf == nil {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now}); err != nil {
		return false
	}
	if now.Add(servingRenewBefore).After(leaf.NotAfter) {
		return false
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return strings.EqualFold(n, h) }) {
			return false
		}
	}
	return true
}

func writeKeyAndCert(certPath, keyPath string, der []byte, key crypto.Signer) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// parseKeyPEM accepts PKCS#8, SEC 1 (EC) and PKCS#1 (RSA) keys, so an
// operator can supply their own CA before first start.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", key)
}

// loadOrCreateToken returns the token in path, validated by check, or
// creates it with gen when the file does not exist.
func loadOrCreateToken(path string, gen func() string, check func(string) error) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		tok := gen()
		if err := writeFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
			return "", err
		}
		return tok, nil
	}
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if err := check(tok); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

func newAdminToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails; crashes the program instead
	return hex.EncodeToString(b)
}

func checkAdminToken(tok string) error {
	if len(tok) < 16 {
		return errors.New("admin token is shorter than 16 characters")
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] > '~' {
			return errors.New("admin token must be printable ASCII without spaces")
		}
	}
	return nil
}

func newJoinCredential() string {
	return randomAlnum(joinIDLen) + "." + randomAlnum(32)
}

// randomAlnum returns n uniformly random characters from [a-z0-9].
func randomAlnum(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, n)
	buf := make([]byte, n+8)
	for len(out) < n {
		_, _ = rand.Read(buf) // never fails; crashes the program instead
		for _, c := range buf {
			// 252 = 7*36: rejecting larger bytes keeps the choice uniform.
			if c < 252 && len(out) < n {
				out = append(out, alphabet[c%36])
			}
		}
	}
	return string(out)
}

// writeFileAtomic writes data to path through a temp file in the same
// directory, fsynced and renamed over path, so readers see the old or the
// new content and never a partial file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil { // persist the rename; best effort
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// tightenPerms makes secret files readable by their owner only, in case
// someone loosened them (or restored them from a backup) between starts.
func tightenPerms(paths ...string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}
