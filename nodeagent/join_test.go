package nodeagent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

func TestJoin(t *testing.T) {
	cp := testcluster.Start(t)
	url := cp.URL
	token, err := os.ReadFile(cp.NodeToken())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := LoadCredentials(dir); err != ErrNotJoined {
		t.Fatalf("before joining: %v", err)
	}
	c, err := JoinOrLoad(ctx, url, func() (string, error) { return string(token), nil }, "edge-1", dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, CredentialsFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", st, err)
	}
	again, err := JoinOrLoad(ctx, url, func() (string, error) { return "not even a token", nil }, "edge-1", dir)
	if err != nil || again.NATSPassword != c.NATSPassword {
		t.Fatalf("JoinOrLoad did not reuse the stored credentials: %v", err)
	}
	nc, err := nats.Connect(c.NATSURL, nats.UserInfo(c.NATSUser, c.NATSPassword), nats.CustomInboxPrefix(c.NATSInboxPrefix))
	if err != nil {
		t.Fatalf("connect with the node's credentials: %v", err)
	}
	nc.Close()

	// A wrong token (another cluster's CA pin) is refused before anything
	// is sent; a wrong secret is refused by the server.
	wrongPin := "K10" + strings.Repeat("0", 64) + "::abcdef.0123456789abcdef"
	if _, err := Join(ctx, url, wrongPin, "edge-2", t.TempDir()); err == nil || !strings.Contains(err.Error(), "did not match") {
		t.Errorf("join with another cluster's pin: %v", err)
	}
	good := strings.TrimSpace(string(token))
	badSecret := good[:strings.LastIndex(good, ".")+1] + strings.Repeat("x", 32)
	if _, err := Join(ctx, url, badSecret, "edge-2", t.TempDir()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("join with a wrong secret: %v", err)
	}
	// Joining again rotates the secret: the old one stops working.
	c2, err := Join(ctx, url, string(token), "edge-1", dir)
	if err != nil || c2.NATSPassword == c.NATSPassword {
		t.Fatalf("rejoin: %v", err)
	}
	if nc, err := nats.Connect(c.NATSURL, nats.UserInfo(c.NATSUser, c.NATSPassword)); err == nil {
		nc.Close()
		t.Error("the old secret still connects after a rejoin")
	}
}

// TestTokenFile: an agent that must join needs a token of the right form
// to start; a refused token is retried with the file read again, so a
// corrected one is taken in; a node that has joined needs no token file.
func TestTokenFile(t *testing.T) {
	cp := testcluster.Start(t)
	good, err := os.ReadFile(cp.NodeToken())
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	cfg := Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName, cfg.DataDir = cp.URL, tokenFile, "edge-1", t.TempDir()
	write := func(tok string) {
		if err := os.WriteFile(tokenFile, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	write("not a token")
	a, err := NewAgent(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Run(ctx); err == nil || !strings.Contains(err.Error(), "token file") {
		t.Fatalf("agent with a malformed token: %v", err)
	}

	tok := strings.TrimSpace(string(good))
	write(tok[:strings.LastIndex(tok, ".")+1] + strings.Repeat("x", 32)) // refused: 401
	_, stop := runAgent(t, cfg)
	time.Sleep(300 * time.Millisecond)
	write(tok)
	eventually(t, "the node joins with the corrected token", 30*time.Second, func() bool {
		_, err := LoadCredentials(cfg.DataDir)
		return err == nil
	})
	stop()

	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	_, stop = runAgent(t, cfg)
	time.Sleep(time.Second) // an agent that cannot start returns at once
	stop()
}
