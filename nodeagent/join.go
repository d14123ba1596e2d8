package nodeagent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/controlplane/pki"
)

// CredentialsFile is where the agent keeps its credentials in its data dir.
const CredentialsFile = "credentials.json"

// ErrNotJoined: the data dir holds no credentials yet.
var ErrNotJoined = errors.New("node has not joined yet")

// Credentials are what a node keeps after joining: the pinned cluster CA
// and its own NATS credentials. After joining the agent needs nothing else.
type Credentials struct {
	Server string `json:"server"`
	CAPEM  []byte `json:"caPEM"`
	nodelink.JoinResponse
}

// Join pins the cluster CA with the join token (pki.FetchCA), exchanges the
// token for the node's credentials over HTTPS verified by that CA, and
// stores them in dir (0600, written atomically). Joining again rotates the
// node's NATS secret.
func Join(ctx context.Context, server, token, nodeName, dir string) (*Credentials, error) {
	jt, err := pki.ParseJoinToken(strings.TrimSpace(token))
	if err != nil {
		return nil, err
	}
	caPEM, err := pki.FetchCA(ctx, server, jt)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", server, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("join: the cluster CA is not a PEM certificate")
	}
	body, _ := json.Marshal(nodelink.JoinRequest{NodeName: nodeName})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(server, "/")+nodelink.JoinPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+jt.String())
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", server, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		var st struct{ Message string }
		if json.Unmarshal(b, &st) == nil && st.Message != "" {
			return nil, fmt.Errorf("join %s: %s (%d)", server, st.Message, resp.StatusCode)
		}
		return nil, fmt.Errorf("join %s: HTTP %d", server, resp.StatusCode)
	}
	c := &Credentials{Server: server, CAPEM: caPEM}
	if err := json.Unmarshal(b, &c.JoinResponse); err != nil {
		return nil, fmt.Errorf("join %s: bad answer: %w", server, err)
	}
	if c.NodeName != nodeName || c.NATSUser == "" || c.NATSPassword == "" {
		return nil, fmt.Errorf("join %s: incomplete credentials for node %q", server, c.NodeName)
	}
	if err := saveCredentials(dir, c); err != nil {
		return nil, err
	}
	return c, nil
}

func saveCredentials(dir string, c *Credentials) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, CredentialsFile))
}

// LoadCredentials reads the credentials a Join stored in dir.
func LoadCredentials(dir string) (*Credentials, error) {
	b, err := os.ReadFile(filepath.Join(dir, CredentialsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotJoined
	}
	if err != nil {
		return nil, err
	}
	var c Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", CredentialsFile, err)
	}
	return &c, nil
}

// JoinOrLoad returns the stored credentials when they are for this node and
// server, and joins otherwise with the join token that token gives (it is
// asked only then): an agent restarted without its control plane keeps
// working from its data dir, and needs no token once joined.
func JoinOrLoad(ctx context.Context, server string, token func() (string, error), nodeName, dir string) (*Credentials, error) {
	c, err := LoadCredentials(dir)
	if err == nil && c.NodeName == nodeName && c.Server == server {
		return c, nil
	}
	if err != nil && !errors.Is(err, ErrNotJoined) {
		return nil, err
	}
	tok, err := token()
	if err != nil {
		return nil, err
	}
	return Join(ctx, server, tok, nodeName, dir)
}

// readToken reads a join token file and checks the token's form.
func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if _, err := pki.ParseJoinToken(tok); err != nil {
		return "", fmt.Errorf("token file %s: %w", file, err)
	}
	return tok, nil
}
