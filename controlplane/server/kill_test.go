package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

type child struct {
	cmd *exec.Cmd
	log string // its stdout and stderr
}

func startChild(t *testing.T, bin string, args []string, apiURL string) *child {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"server"}, args...)...)
	log, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if code, _ := tryGet(apiURL + "/readyz"); code == http.StatusOK {
			return &child{cmd: cmd, log: log.Name()}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("server not ready after 60s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tryGet(url string) (int, error) {
	c := &http.Client{Transport: insecure(), Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestKillBetweenCommitAndPublish SIGKILLs the server while clients write
// and the publisher lags behind etcd, starts it again and checks that the
// stream holds every etcd revision under /registry/ exactly once, in
// order: nothing lost, nothing doubled. In "external" etcd and NATS run in
// the test process and outlive the server. In "embedded" they die with it,
// and with them the stream's last messages if their writes were not yet
// flushed (the stream persists asynchronously).
func TestKillBetweenCommitAndPublish(t *testing.T) {
	t.Run("external", func(t *testing.T) { killAndRestart(t, false) })
	t.Run("embedded", func(t *testing.T) { killAndRestart(t, true) })
}

func killAndRestart(t *testing.T, embedded bool) {
	bin := testenv.Wasmfleet(t)
	dir := t.TempDir()
	api := testenv.FreeAddr(t)
	args := []string{"--data-dir", dir, "--api-listen", api}
	var etcdURL, natsURL string
	if embedded {
		etcd := testenv.FreeAddr(t)
		etcdURL = "http://" + etcd
		args = append(args, "--nats-listen", testenv.FreeAddr(t), "--etcd-client-listen", etcd, "--etcd-peer-listen", testenv.FreeAddr(t))
	} else {
		e, _ := testenv.Etcd(t)
		n := testenv.NATS(t)
		etcdURL, natsURL = e.Endpoint, n.URL()
		args = append(args, "--etcd-endpoints", etcdURL, "--nats-url", natsURL)
	}
	apiURL := "https://" + api
	ctx := context.Background()

	c := startChild(t, bin, args, apiURL)
	if embedded {
		b, err := os.ReadFile(filepath.Join(dir, server.NATSURLFile))
		if err != nil {
			t.Fatal(err)
		}
		natsURL = strings.TrimSpace(string(b))
	}
	lagged := 0
	for round := 0; round < 5 && lagged < 2; round++ {
		rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, server.KubeconfigFile))
		if err != nil {
			t.Fatal(err)
		}
		rc.QPS, rc.Burst, rc.Timeout = -1, 0, 5*time.Second
		cs := kubernetes.NewForConfigOrDie(rc)
		var created, acked atomic.Int64 // acked: the highest revision a create returned
		done := make(chan struct{})
		for w := range 8 {
			go func() {
				defer func() { done <- struct{}{} }()
				for i := range 5000 {
					cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("r%d-w%d-%d", round, w, i)}, Data: map[string]string{"i": strconv.Itoa(i)}}
					out, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
					if err != nil {
						return
					}
					created.Add(1)
					rev, _ := strconv.ParseInt(out.ResourceVersion, 10, 64)
					for old := acked.Load(); rev > old && !acked.CompareAndSwap(old, rev); old = acked.Load() {
					}
				}
			}()
		}
		for created.Load() < 300 {
			time.Sleep(2 * time.Millisecond)
		}
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.cmd.Wait()
		for range 8 {
			<-done
		}
		// What etcd committed and what the stream held at the kill, read
		// while the server is dead; or, when etcd and the stream died with
		// it, the acknowledged writes and where the restarted publisher
		// resumes.
		committed, streamRev := acked.Load(), int64(0)
		if !embedded {
			committed, streamRev = currentRevision(t, etcdURL), lastPublished(t, natsURL)
		}
		c = startChild(t, bin, args, apiURL)
		if embedded {
			streamRev = resumedAfter(t, c.log)
		}
		t.Logf("round %d: killed after %d creates; the stream held revisions up to %d of %d", round, created.Load(), streamRev, committed)
		if streamRev < committed {
			lagged++
		}
	}
	if lagged == 0 {
		t.Fatal("the stream never lagged etcd at a kill; the test proved nothing")
	}

	ec := etcdClient(t, etcdURL)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	rc, _ := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, server.KubeconfigFile))
	last, err := kubernetes.NewForConfigOrDie(rc).CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-restart"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lastRev, _ := strconv.ParseInt(last.ResourceVersion, 10, 64)

	// etcd's own history of /registry/ (nothing was compacted).
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var history []string // "rev key"
	for resp := range ec.Watch(wctx, "/registry/", clientv3.WithPrefix(), clientv3.WithRev(1)) {
		for _, ev := range resp.Events {
			history = append(history, fmt.Sprintf("%d %s", ev.Kv.ModRevision, ev.Kv.Key))
		}
		if len(resp.Events) > 0 && resp.Events[len(resp.Events)-1].Kv.ModRevision >= lastRev {
			break
		}
	}

	// The stream's events copies, in stream order.
	cons, err := js.OrderedConsumer(ctx, subjects.DefaultStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"wasmfleet.events.>"}})
	if err != nil {
		t.Fatal(err)
	}
	var stream []string
	for len(stream) < len(history) {
		m, err := cons.Next(jetstream.FetchMaxWait(30 * time.Second))
		if err != nil {
			t.Fatalf("stream ended after %d of %d events: %v", len(stream), len(history), err)
		}
		h := m.Headers()
		stream = append(stream, h.Get("Wasmfleet-Revision")+" "+h.Get("Wasmfleet-Key"))
	}
	// The scheduler and the controller manager keep renewing their Leases,
	// so later revisions follow; a revision already seen must not.
	var lastSeen int64
	fmt.Sscan(history[len(history)-1], &lastSeen)
	if m, err := cons.Next(jetstream.FetchMaxWait(time.Second)); err == nil {
		if rev, _ := strconv.ParseInt(m.Headers().Get("Wasmfleet-Revision"), 10, 64); rev <= lastSeen {
			t.Errorf("the stream repeats revision %d after etcd's history up to %d", rev, lastSeen)
		}
	}
	for i := range history {
		if stream[i] != history[i] {
			t.Fatalf("event %d: stream has %q, etcd history %q", i, stream[i], history[i])
		}
	}
	t.Logf("%d revisions, each published once, in order", len(history))
}

func etcdClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ec.Close() })
	return ec
}

// currentRevision returns etcd's current revision.
func currentRevision(t *testing.T, endpoint string) int64 {
	t.Helper()
	resp, err := etcdClient(t, endpoint).Get(context.Background(), "/registry/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// lastPublished returns the revision of the last event in the stream.
func lastPublished(t *testing.T, natsURL string) int64 {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	m, err := js.Stream(ctx, subjects.DefaultStream)
	if err != nil {
		return 0
	}
	last, err := m.GetLastMsgForSubject(ctx, "wasmfleet.events.>")
	if err != nil {
		return 0
	}
	rev, _ := strconv.ParseInt(last.Header.Get("Wasmfleet-Revision"), 10, 64)
	return rev
}

// resumedAfter returns the last revision the stream held when the
// publisher of the server logging to logFile last resumed.
func resumedAfter(t *testing.T, logFile string) int64 {
	t.Helper()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var from int64 = -1
	for line := range strings.Lines(string(b)) {
		if !strings.Contains(line, `msg="event publisher: resuming"`) {
			continue
		}
		for f := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(f, "watchFrom="); ok {
				from, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	if from < 0 {
		t.Fatalf("%s: no resume logged:\n%s", logFile, b)
	}
	return from - 1
}
