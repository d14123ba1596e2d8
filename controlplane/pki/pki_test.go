package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ownedFiles lists every file LoadOrCreate owns, relative to the data dir,
// with the mode it must have.
func ownedFiles() map[string]os.FileMode {
	return map[string]os.FileMode{
		"tls/ca.crt":      0o644,
		"tls/ca.key":      0o600,
		"tls/serving.crt": 0o644,
		"tls/serving.key": 0o600,
		"tls/admin-token": 0o600,
		"tls/join-token":  0o600,
		"node-token":      0o600,
	}
}

func readAll(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for name := range ownedFiles() {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

func mustLoad(t *testing.T, opts Options) *Bundle {
	t.Helper()
	b, err := LoadOrCreate(opts)
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	return b
}

func verifyServing(t *testing.T, b *Bundle, host string) error {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(b.CA)
	_, err := b.ServingCert.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host})
	return err
}

func TestLoadOrCreateFirstStartThenReload(t *testing.T) {
	dir := t.TempDir()
	b1 := mustLoad(t, Options{Dir: dir})

	if runtime.GOOS != "windows" {
		for name, want := range ownedFiles() {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%s mode = %o, want %o", name, got, want)
			}
		}
		if fi, err := os.Stat(filepath.Join(dir, "tls")); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("tls dir: %v, mode %o, want 0700", err, fi.Mode().Perm())
		}
	}
	for _, h := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := verifyServing(t, b1, h); err != nil {
			t.Errorf("serving cert for %s: %v", h, err)
		}
	}
	if !b1.CA.IsCA || !bytes.Equal(b1.CACertPEM, mustRead(t, filepath.Join(dir, "tls/ca.crt"))) {
		t.Error("CA in bundle does not match tls/ca.crt")
	}
	if strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "node-token")))) != b1.JoinToken {
		t.Error("node-token does not hold the bundle's join token")
	}
	jt, err := ParseJoinToken(b1.JoinToken)
	if err != nil {
		t.Fatalf("bundle's join token does not parse: %v", err)
	}
	if jt.CAHash != caHash(b1.CA) {
		t.Errorf("join token pins %s, CA hash is %s", jt.CAHash, caHash(b1.CA))
	}
	if len(b1.AdminToken) < 32 {
		t.Errorf("admin token %q too short", b1.AdminToken)
	}

	files := readAll(t, dir)
	b2 := mustLoad(t, Options{Dir: dir})
	if !bytes.Equal(b1.CACertPEM, b2.CACertPEM) {
		t.Error("reload changed the CA")
	}
	if b1.AdminToken != b2.AdminToken || b1.JoinToken != b2.JoinToken {
		t.Error("reload changed the tokens")
	}
	if !bytes.Equal(b1.ServingCert.Certificate[0], b2.ServingCert.Certificate[0]) {
		t.Error("reload re-issued a serving cert that still fits")
	}
	for name, before := range files {
		if after := mustRead(t, filepath.Join(dir, name)); !bytes.Equal(before, after) {
			t.Errorf("reload rewrote %s", name)
		}
	}
}

func TestReissueServingCertForNewHost(t *testing.T) {
	dir := t.TempDir()
	b1 := mustLoad(t, Options{Dir: dir})
	if err := verifyServing(t, b1, "10.1.2.3"); err == nil {
		t.Fatal("first serving cert unexpectedly covers 10.1.2.3")
	}
	caKey := mustRead(t, filepath.Join(dir, "tls/ca.key"))
	nodeToken := mustRead(t, filepath.Join(dir, "node-token"))

	b2 := mustLoad(t, Options{Dir: dir, Hosts: []string{"10.1.2.3", "edge.example.com", "[fd00::7]", "0.0.0.0", " localhost "}})
	if !bytes.Equal(b1.CACertPEM, b2.CACertPEM) || !bytes.Equal(caKey, mustRead(t, filepath.Join(dir, "tls/ca.key"))) {
		t.Error("re-issue changed the CA")
	}
	if b1.AdminToken != b2.AdminToken || b1.JoinToken != b2.JoinToken || !bytes.Equal(nodeToken, mustRead(t, filepath.Join(dir, "node-token"))) {
		t.Error("re-issue changed the tokens")
	}
	if bytes.Equal(b1.ServingCert.Certificate[0], b2.ServingCert.Certificate[0]) {
		t.Fatal("serving cert was not re-issued")
	}
	for _, h := range []string{"10.1.2.3", "edge.example.com", "fd00::7", "127.0.0.1", "::1", "localhost"} {
		if err := verifyServing(t, b2, h); err != nil {
			t.Errorf("re-issued cert for %s: %v", h, err)
		}
	}
	if ips := b2.ServingCert.Leaf.IPAddresses; len(ips) != 4 {
		t.Errorf("re-issued cert IPs = %v, want 127.0.0.1, ::1, 10.1.2.3, fd00::7", ips)
	}
	if names := b2.ServingCert.Leaf.DNSNames; len(names) != 2 {
		t.Errorf("re-issued cert DNS names = %v, want localhost, edge.example.com", names)
	}
	// The new cert is on disk: a third load with the same hosts keeps it.
	b3 := mustLoad(t, Options{Dir: dir, Hosts: []string{"edge.example.com", "10.1.2.3"}})
	if !bytes.Equal(b2.ServingCert.Certificate[0], b3.ServingCert.Certificate[0]) {
		t.Error("serving cert re-issued although it covers every host")
	}
}

func TestLoadOrCreateRefusesHalfACA(t *testing.T) {
	dir := t.TempDir()
	mustLoad(t, Options{Dir: dir})
	if err := os.Remove(filepath.Join(dir, "tls/ca.key")); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreate(Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "ca.key is missing") {
		t.Fatalf("LoadOrCreate without ca.key: err = %v, want a missing-key error", err)
	}
}

func TestLoadOrCreateRecoversFromKeyWithoutCert(t *testing.T) {
	// A crash after writing ca.key but before ca.crt leaves only the key:
	// there is no CA yet, so one is created.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls/ca.key"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := mustLoad(t, Options{Dir: dir})
	if err := verifyServing(t, b, "localhost"); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOrCreateTightensLooseModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX modes")
	}
	dir := t.TempDir()
	mustLoad(t, Options{Dir: dir})
	key := filepath.Join(dir, "tls/ca.key")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	mustLoad(t, Options{Dir: dir})
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode = %o after reload, want 0600", fi.Mode().Perm())
	}
}

func TestTokenChecks(t *testing.T) {
	b := mustLoad(t, Options{Dir: t.TempDir()})
	jt, _ := ParseJoinToken(b.JoinToken)
	other := jt
	other.CAHash = strings.Repeat("0", 64)

	if !b.IsAdminToken(b.AdminToken) {
		t.Error("IsAdminToken(admin) = false")
	}
	for _, tok := range []string{"", b.AdminToken + "x", b.AdminToken[1:], b.JoinToken} {
		if b.IsAdminToken(tok) {
			t.Errorf("IsAdminToken(%q) = true", tok)
		}
	}
	for _, tok := range []string{b.JoinToken, jt.ID + "." + jt.Secret, b.JoinToken + "\n"} {
		if !b.IsJoinToken(tok) {
			t.Errorf("IsJoinToken(%q) = false", tok)
		}
	}
	for _, tok := range []string{"", b.AdminToken, other.String(), jt.ID + "." + jt.Secret + "x", "abcdef.0123456789abcdef"} {
		if b.IsJoinToken(tok) {
			t.Errorf("IsJoinToken(%q) = true", tok)
		}
	}
}

func TestJoinTokenRoundTrip(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	in := JoinToken{CAHash: hash, ID: "abc123", Secret: "0123456789abcdefXYZ"}
	s := in.String()
	if want := "K10" + hash + "::abc123.0123456789abcdefXYZ"; s != want {
		t.Fatalf("String() = %q, want %q", s, want)
	}
	out, err := ParseJoinToken("  " + s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
	// Upper-case hex is accepted and normalised.
	out, err = ParseJoinToken("K10" + strings.ToUpper(hash) + "::abc123.0123456789abcdefXYZ")
	if err != nil || out.CAHash != hash {
		t.Errorf("upper-case hash: %+v, %v", out, err)
	}
}

func TestParseJoinTokenErrors(t *testing.T) {
	hash := strings.Repeat("0f", 32)
	const secret = "s3cretS3cret0123"
	for _, tc := range []struct {
		name, token, wantErr string
	}{
		{"empty", "  ", "empty"},
		{"no prefix", "abcdef." + secret, `"K10"`},
		{"no separator", "K10" + hash + "abcdef." + secret, `"::"`},
		{"short hash", "K10" + hash[:62] + "::abcdef." + secret, "64 hex characters"},
		{"non-hex hash", "K10" + strings.Repeat("zz", 32) + "::abcdef." + secret, "not hexadecimal"},
		{"no dot", "K10" + hash + "::abcdef" + secret, `"."`},
		{"short id", "K10" + hash + "::abcde." + secret, "id must be 6"},
		{"upper-case id", "K10" + hash + "::ABCDEF." + secret, "id must be 6"},
		{"short secret", "K10" + hash + "::abcdef.0123456789", "secret must be 16"},
		{"symbol in secret", "K10" + hash + "::abcdef.0123456789abcde!", "letters and digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseJoinToken(tc.token)
			if err == nil {
				t.Fatalf("ParseJoinToken(%q) succeeded", tc.token)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q repeats the secret", err)
			}
		})
	}
}

// startServer serves /cacerts from caFrom over TLS with servingFrom's
// serving certificate; any other path checks the admin bearer token of
// servingFrom.
func startServer(t *testing.T, servingFrom, caFrom *Bundle) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET /cacerts", caFrom.CACertsHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !servingFrom.IsAdminToken(tok) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = servingFrom.ServerTLSConfig()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	if host, _, _ := net.SplitHostPort(srv.Listener.Addr().String()); host != "127.0.0.1" {
		t.Fatalf("test server listens on %s, want 127.0.0.1", host)
	}
	return srv
}

func TestFetchCA(t *testing.T) {
	b := mustLoad(t, Options{Dir: t.TempDir()})
	other := mustLoad(t, Options{Dir: t.TempDir()})
	srv := startServer(t, b, b)
	ctx := context.Background()

	tok, err := ParseJoinToken(b.JoinToken)
	if err != nil {
		t.Fatal(err)
	}
	got, err := FetchCA(ctx, srv.URL, tok)
	if err != nil {
		t.Fatalf("FetchCA with the right token: %v", err)
	}
	if !bytes.Equal(got, b.CACertPEM) {
		t.Errorf("FetchCA returned a different CA")
	}

	t.Run("wrong hash", func(t *testing.T) {
		wrong, _ := ParseJoinToken(other.JoinToken)
		_, err := FetchCA(ctx, srv.URL, wrong)
		var mismatch *CAHashMismatchError
		if !errors.As(err, &mismatch) {
			t.Fatalf("FetchCA with another cluster's token: err = %v, want *CAHashMismatchError", err)
		}
		if !strings.Contains(err.Error(), "did not match") {
			t.Errorf("error %q does not say the hash did not match", err)
		}
	})

	t.Run("server cert not from pinned CA", func(t *testing.T) {
		// An interceptor that relays the real CA but presents its own
		// certificate passes the hash check and must still be rejected.
		mitm := startServer(t, other, b)
		_, err := FetchCA(ctx, mitm.URL, tok)
		if err == nil || !strings.Contains(err.Error(), "does not verify against the pinned CA") {
			t.Fatalf("FetchCA through an interceptor: err = %v, want a verification error", err)
		}
	})

	t.Run("http URL", func(t *testing.T) {
		if _, err := FetchCA(ctx, "http://127.0.0.1:1", tok); err == nil {
			t.Fatal("FetchCA accepted an http:// URL")
		}
	})
}

func TestCACertsHandlerMethods(t *testing.T) {
	b := mustLoad(t, Options{Dir: t.TempDir()})
	rec := httptest.NewRecorder()
	b.CACertsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/cacerts", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /cacerts: %d, want 405", rec.Code)
	}
	rec = httptest.NewRecorder()
	b.CACertsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cacerts", nil))
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), b.CACertPEM) {
		t.Errorf("GET /cacerts: %d %q", rec.Code, rec.Body.String())
	}
}

func TestWriteKubeconfig(t *testing.T) {
	b := mustLoad(t, Options{Dir: t.TempDir()})
	srv := startServer(t, b, b)
	path := filepath.Join(t.TempDir(), "sub", "kubeconfig.yaml")
	if err := WriteKubeconfig(path, srv.URL, b.CACertPEM, "admin", b.AdminToken); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode = %o, want 0600", fi.Mode().Perm())
	}

	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "wasmfleet" {
		t.Errorf("current-context = %q", cfg.CurrentContext)
	}
	ctxt := cfg.Contexts[cfg.CurrentContext]
	if ctxt == nil || ctxt.Cluster != "wasmfleet" || ctxt.AuthInfo != "admin" {
		t.Fatalf("context = %+v", ctxt)
	}
	if c := cfg.Clusters["wasmfleet"]; c == nil || c.Server != srv.URL || !bytes.Equal(c.CertificateAuthorityData, b.CACertPEM) {
		t.Errorf("cluster = %+v", c)
	}
	if u := cfg.AuthInfos["admin"]; u == nil || u.Token != b.AdminToken {
		t.Errorf("user = %+v", u)
	}

	restCfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(srv.URL + "/api")
	if err != nil {
		t.Fatalf("GET through kubeconfig client: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api: %s, want 200 (bearer token missing?)", resp.Status)
	}

	// A kubeconfig that embeds another cluster's CA must not connect.
	other := mustLoad(t, Options{Dir: t.TempDir()})
	otherPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := WriteKubeconfig(otherPath, srv.URL, other.CACertPEM, "admin", b.AdminToken); err != nil {
		t.Fatal(err)
	}
	otherCfg, err := clientcmd.BuildConfigFromFlags("", otherPath)
	if err != nil {
		t.Fatal(err)
	}
	otherClient, err := rest.HTTPClientFor(otherCfg)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := otherClient.Get(srv.URL + "/api"); err == nil {
		resp.Body.Close()
		t.Fatal("client with the wrong CA connected")
	}
}

func TestWriteKubeconfigRejectsBadInput(t *testing.T) {
	b := mustLoad(t, Options{Dir: t.TempDir()})
	path := filepath.Join(t.TempDir(), "kc")
	for name, call := range map[string]func() error{
		"http URL":    func() error { return WriteKubeconfig(path, "http://127.0.0.1:6443", b.CACertPEM, "admin", "t") },
		"no CA":       func() error { return WriteKubeconfig(path, "https://127.0.0.1:6443", []byte("nope"), "admin", "t") },
		"empty token": func() error { return WriteKubeconfig(path, "https://127.0.0.1:6443", b.CACertPEM, "admin", "") },
	} {
		if err := call(); err == nil {
			t.Errorf("%s: WriteKubeconfig succeeded", name)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("rejected WriteKubeconfig left a file: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
