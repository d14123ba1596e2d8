package pki

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

const (
	joinTokenPrefix = "K10"
	joinIDLen       = 6
	joinSecretMin   = 16
	joinSecretMax   = 256
	// maxCABytes bounds the /cacerts response FetchCA reads.
	maxCABytes = 1 << 20
)

// JoinToken is a node join token, K10<ca-hash>::<id>.<secret> (the k3s
// format, with a kubeadm-style bootstrap credential). CAHash is the hex
// sha256 of the cluster CA certificate's DER encoding: it lets a joining
// node pin the CA before it trusts anything (see [FetchCA]).
type JoinToken struct {
	CAHash string // 64 lowercase hex characters
	ID     string // 6 characters [a-z0-9]
	Secret string // at least 16 characters [A-Za-z0-9]
}

// String returns the full token, secret included.
func (t JoinToken) String() string {
	return joinTokenPrefix + t.CAHash + "::" + t.ID + "." + t.Secret
}

// ParseJoinToken parses a full join token, ignoring surrounding white
// space (token files end in a newline). Errors say what is malformed and
// never repeat the secret.
func ParseJoinToken(s string) (JoinToken, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return JoinToken{}, errors.New("join token is empty")
	}
	rest, ok := strings.CutPrefix(s, joinTokenPrefix)
	if !ok {
		return JoinToken{}, errors.New(`join token does not start with "K10": want K10<ca-hash>::<id>.<secret>, the full token from the server's DIR/node-token`)
	}
	hash, cred, ok := strings.Cut(rest, "::")
	if !ok {
		return JoinToken{}, errors.New(`join token has no "::" between the CA hash and the credential: want K10<ca-hash>::<id>.<secret>`)
	}
	hash = strings.ToLower(hash)
	if len(hash) != 2*sha256.Size {
		return JoinToken{}, fmt.Errorf("join token CA hash must be %d hex characters (a sha256 digest), got %d", 2*sha256.Size, len(hash))
	}
	if _, err := hex.DecodeString(hash); err != nil {
		return JoinToken{}, errors.New("join token CA hash is not hexadecimal")
	}
	id, secret, err := parseCredential(cred)
	if err != nil {
		return JoinToken{}, err
	}
	return JoinToken{CAHash: hash, ID: id, Secret: secret}, nil
}

// parseCredential splits and checks the "<id>.<secret>" part of a token.
func parseCredential(cred string) (id, secret string, err error) {
	id, secret, ok := strings.Cut(cred, ".")
	if !ok {
		return "", "", errors.New(`join token credential has no "." between id and secret: want <id>.<secret>`)
	}
	if len(id) != joinIDLen || !isAlnum(id, false) {
		return "", "", fmt.Errorf("join token id must be %d characters [a-z0-9], got %q", joinIDLen, id)
	}
	if len(secret) < joinSecretMin || len(secret) > joinSecretMax {
		return "", "", fmt.Errorf("join token secret must be %d to %d characters, got %d", joinSecretMin, joinSecretMax, len(secret))
	}
	if !isAlnum(secret, true) {
		return "", "", errors.New("join token secret must contain only letters and digits")
	}
	return id, secret, nil
}

func isAlnum(s string, upperOK bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || upperOK && 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// CAHashMismatchError is returned by [FetchCA] when the server's CA is not
// the one the join token pins.
type CAHashMismatchError struct {
	Want string // the join token's CA hash
	Got  string // sha256 of the CA the server sent
}

func (e *CAHashMismatchError) Error() string {
	return fmt.Sprintf("cluster CA hash did not match: the join token pins sha256 %s but the server sent a CA with sha256 %s (wrong token for this server, or the connection is intercepted)", e.Want, e.Got)
}

// FetchCA fetches the cluster CA from serverURL + "/cacerts" and pins it:
// the GET itself trusts nothing (no certificate verification, no
// credentials sent, no redirects followed); the CA it returns is accepted
// only if its sha256 equals t.CAHash (else a *[CAHashMismatchError]) and the
// certificate chain the server presented verifies against it for the
// server's host name. It returns the CA certificate PEM, to be used as the
// only root for every later connection to the server.
func FetchCA(ctx context.Context, serverURL string, t JoinToken) ([]byte, error) {
	want, err := hex.DecodeString(t.CAHash)
	if err != nil || len(want) != sha256.Size {
		return nil, errors.New("fetch cluster CA: join token CA hash is not a sha256 hex digest")
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("fetch cluster CA: server URL: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("fetch cluster CA: server URL %q must be https://HOST[:PORT]", serverURL)
	}
	target := u.JoinPath("cacerts").String()

	tr := &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		ForceAttemptHTTP2: true,
		// Nothing is trusted yet; the answer is checked against the pin below.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch cluster CA: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch cluster CA: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch cluster CA: GET %s: %s", target, resp.Status)
	}
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return nil, fmt.Errorf("fetch cluster CA: GET %s: server presented no certificate", target)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCABytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch cluster CA: read %s: %w", target, err)
	}
	if len(body) > maxCABytes {
		return nil, fmt.Errorf("fetch cluster CA: %s is larger than %d bytes", target, maxCABytes)
	}
	block, rest := pem.Decode(body)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("fetch cluster CA: %s is not a PEM certificate", target)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("fetch cluster CA: %s holds more than one PEM block", target)
	}

	sum := sha256.Sum256(block.Bytes)
	if subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return nil, &CAHashMismatchError{Want: hex.EncodeToString(want), Got: hex.EncodeToString(sum[:])}
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("fetch cluster CA: parse CA certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	intermediates := x509.NewCertPool()
	for _, c := range resp.TLS.PeerCertificates[1:] {
		intermediates.AddCert(c)
	}
	if _, err := resp.TLS.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		DNSName:       u.Hostname(),
	}); err != nil {
		return nil, fmt.Errorf("fetch cluster CA: the server's certificate does not verify against the pinned CA: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), nil
}
