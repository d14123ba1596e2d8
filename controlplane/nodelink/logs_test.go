package nodelink_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink/linkserver"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// adminConn connects to the cluster's NATS as the control plane does.
func (c *cluster) adminConn(t *testing.T) *nats.Conn {
	t.Helper()
	u, err := os.ReadFile(filepath.Join(c.dir, server.NATSURLFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(strings.TrimSpace(string(u)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestLogSubjectPermissions: a node may subscribe to its own log requests
// only, not to another node's, nor to the rest of its agent subjects (its
// API requests, its log data), and may publish log data only under its own
// subjects.
func TestLogSubjectPermissions(t *testing.T) {
	c := startCluster(t)
	const node, other = "edge-1", "edge-2"
	r := c.joinNode(t, node)
	c.joinNode(t, other)
	nc, errs, err := nodeConn(t, r, r.NATSPassword)
	if err != nil {
		t.Fatal(err)
	}
	admin := c.adminConn(t)

	own, err := nc.SubscribeSync(nodelink.LogSubject(node))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Publish(nodelink.LogSubject(node), []byte("request")); err != nil {
		t.Fatal(err)
	}
	if m, err := own.NextMsg(10 * time.Second); err != nil || string(m.Data) != "request" {
		t.Fatalf("own log subject: %v %v", m, err)
	}

	tok := subjects.EncodeToken(node)
	for _, subj := range []string{
		nodelink.LogSubject(other),
		"wasmfleet.agent." + subjects.EncodeToken(other) + ".>",
		"wasmfleet.agent.*.logs",
		"wasmfleet.agent." + tok + ".api",
		"wasmfleet.agent." + tok + ".logdata.x",
		"wasmfleet.agent." + tok + ".>",
	} {
		if _, err := nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		wantViolation(t, errs, "subscribe", subj)
	}
	foreign := "wasmfleet.agent." + subjects.EncodeToken(other) + ".logdata.x"
	if err := nc.Publish(foreign, []byte("forged")); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, errs, "publish", foreign)
}

// logPair is a node agent's log server and the control plane's log client
// on a real cluster's NATS.
type logPair struct {
	client   *linkserver.PodLogs
	server   *nodelink.LogServer
	nodeConn *nats.Conn
	admin    *nats.Conn
}

func startLogPair(t *testing.T, c *cluster, node string, open nodelink.LogOpener, idle time.Duration, clientCfg nodelink.LogClientConfig) *logPair {
	t.Helper()
	r := c.joinNode(t, node)
	nc, _, err := nodeConn(t, r, r.NATSPassword)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := nodelink.NewLogServer(nodelink.LogServerConfig{Conn: nc, Node: node, Open: open, IdleTimeout: idle, KeepAlive: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("log server: %v", err)
		}
	})
	testenv.WaitSubscribed(t, nc, 0)
	admin := c.adminConn(t)
	if clientCfg.Conn == nil {
		clientCfg.Conn = admin
	}
	client, err := linkserver.NewPodLogs(clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	return &logPair{client: client, server: srv, nodeConn: nc, admin: admin}
}

func waitIdle(t *testing.T, s *nodelink.LogServer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		streams, follows := s.Active()
		if streams == 0 && follows == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent still serves %d streams (%d follows)", streams, follows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitActive(t *testing.T, s *nodelink.LogServer, follows int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, f := s.Active(); f == follows {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent never had %d follows", follows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLogStreams runs the log protocol between a real node connection and
// the control plane's: refusals, large logs under flow control, the byte
// limit, and follows stopped by the client, by an abandoned client and by
// a vanished agent.
func TestLogStreams(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	opts := func(node string) apiserver.PodLogOptions {
		return apiserver.PodLogOptions{Namespace: "default", Pod: "p", Node: node, Container: "main"}
	}

	t.Run("agent not connected", func(t *testing.T) {
		client, err := linkserver.NewPodLogs(nodelink.LogClientConfig{Conn: c.adminConn(t)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.OpenPodLogs(ctx, opts("nowhere"))
		if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), `node "nowhere" is not connected`) {
			t.Fatalf("want 503, got %v", err)
		}
	})

	// A large log, its size a multiple of nothing in particular.
	big := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz\n"), 60000) // ~2.2 MiB
	var written atomic.Int64
	open := func(req nodelink.LogRequest) (func(context.Context, io.Writer) error, error) {
		switch req.Pod {
		case "refused":
			return nil, &nodelink.LogError{Code: http.StatusBadRequest, Message: `container "main" in pod "refused" is waiting to start: ContainerCreating`}
		case "broken":
			return nil, errors.New("disk on fire")
		case "follow":
			return func(ctx context.Context, w io.Writer) error {
				for i := 0; ; i++ {
					if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
						return err
					}
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(20 * time.Millisecond):
					}
				}
			}, nil
		}
		return func(ctx context.Context, w io.Writer) error {
			for off := 0; off < len(big); off += 10000 {
				n, err := w.Write(big[off:min(off+10000, len(big))])
				written.Add(int64(n))
				if err != nil {
					return err
				}
			}
			return nil
		}, nil
	}
	p := startLogPair(t, c, "edge-1", open, 2*time.Second, nodelink.LogClientConfig{Window: 4})

	t.Run("refusals", func(t *testing.T) {
		o := opts("edge-1")
		o.Pod = "refused"
		_, err := p.client.OpenPodLogs(ctx, o)
		if !apierrors.IsBadRequest(err) || err.Error() != `container "main" in pod "refused" is waiting to start: ContainerCreating` {
			t.Fatalf("want the agent's 400, got %v", err)
		}
		o.Pod = "broken"
		_, err = p.client.OpenPodLogs(ctx, o)
		if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("want 500, got %v", err)
		}
	})

	t.Run("flow control", func(t *testing.T) {
		written.Store(0)
		rc, err := p.client.OpenPodLogs(ctx, opts("edge-1"))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var got bytes.Buffer
		buf := make([]byte, 1000) // a slow reader: small reads
		for {
			n, err := rc.Read(buf)
			got.Write(buf[:n])
			// The agent is never more than the window (4 chunks) and the
			// chunk being read ahead of the reader.
			if ahead := written.Load() - int64(got.Len()); ahead > 5*nodelink.LogChunkBytes {
				t.Fatalf("agent %d bytes ahead of the reader", ahead)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got.Bytes(), big) {
			t.Fatalf("got %d bytes, want %d identical", got.Len(), len(big))
		}
		waitIdle(t, p.server)
	})

	t.Run("limit bytes", func(t *testing.T) {
		o := opts("edge-1")
		o.LimitBytes = ptr(int64(100))
		rc, err := p.client.OpenPodLogs(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(b, big[:100]) {
			t.Fatalf("got %q %v", b, err)
		}
		o.Pod, o.Follow = "follow", true
		rc2, err := p.client.OpenPodLogs(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		defer rc2.Close()
		if b, err := io.ReadAll(rc2); err != nil || len(b) != 100 || !strings.HasPrefix(string(b), "line 0\nline 1\n") {
			t.Fatalf("limited follow: %q %v", b, err)
		}
	})

	readLines := func(t *testing.T, rc io.Reader, n int) {
		t.Helper()
		var got []byte
		buf := make([]byte, 4096)
		for bytes.Count(got, []byte("\n")) < n {
			k, err := rc.Read(buf)
			got = append(got, buf[:k]...)
			if err != nil {
				t.Fatalf("after %q: %v", got, err)
			}
		}
		if !strings.HasPrefix(string(got), "line 0\nline 1\nline 2\n") {
			t.Fatalf("follow got %q", got)
		}
	}

	t.Run("follow cancelled by the client", func(t *testing.T) {
		o := opts("edge-1")
		o.Pod, o.Follow = "follow", true
		rc, err := p.client.OpenPodLogs(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		readLines(t, rc, 5)
		waitActive(t, p.server, 1)
		rc.Close()
		waitIdle(t, p.server)
	})

	t.Run("follow abandoned by the control plane", func(t *testing.T) {
		gone := c.adminConn(t)
		client, err := linkserver.NewPodLogs(nodelink.LogClientConfig{Conn: gone})
		if err != nil {
			t.Fatal(err)
		}
		o := opts("edge-1")
		o.Pod, o.Follow = "follow", true
		rc, err := client.OpenPodLogs(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		readLines(t, rc, 3)
		gone.Close() // no cancel, no more keep-alives
		waitIdle(t, p.server)
	})

	t.Run("agent vanishes while followed", func(t *testing.T) {
		q := startLogPair(t, c, "edge-2", open, 2*time.Second, nodelink.LogClientConfig{AgentTimeout: time.Second})
		o := opts("edge-2")
		o.Pod, o.Follow = "follow", true
		rc, err := q.client.OpenPodLogs(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		readLines(t, rc, 3)
		q.nodeConn.Close()
		_, err = io.Copy(io.Discard, rc)
		if err == nil || !strings.Contains(err.Error(), `the agent of node "edge-2" stopped answering`) {
			t.Fatalf("want the stream to fail, got %v", err)
		}
	})
}
