package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	cmd  *exec.Cmd
	args []string
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
			return &child{cmd: cmd, args: args}
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
// order: nothing lost, nothing doubled. etcd and NATS run in the test
// process, so the lag is measured while the server is dead.
func TestKillBetweenCommitAndPublish(t *testing.T) {
	bin := testenv.Wasmfleet(t)
	e, ec := testenv.Etcd(t)
	n := testenv.NATS(t)
	dir := t.TempDir()
	api := testenv.FreeAddr(t)
	args := []string{"--data-dir", dir, "--api-listen", api, "--etcd-endpoints", e.Endpoint, "--nats-url", n.URL()}
	apiURL := "https://" + api
	ctx := context.Background()
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	lagged := 0
	for round := 0; round < 5 && lagged < 2; round++ {
		c := startChild(t, bin, args, apiURL)
		rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, server.KubeconfigFile))
		if err != nil {
			t.Fatal(err)
		}
		rc.QPS, rc.Burst, rc.Timeout = -1, 0, 5*time.Second
		cs := kubernetes.NewForConfigOrDie(rc)
		var created atomic.Int64
		done := make(chan struct{})
		for w := range 8 {
			go func() {
				defer func() { done <- struct{}{} }()
				for i := range 5000 {
					cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("r%d-w%d-%d", round, w, i)}, Data: map[string]string{"i": strconv.Itoa(i)}}
					if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
						return
					}
					created.Add(1)
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
		cur, err := ec.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		published := int64(0)
		if m, err := js.Stream(ctx, subjects.DefaultStream); err == nil {
			if last, err := m.GetLastMsgForSubject(ctx, "wasmfleet.events.>"); err == nil {
				published, _ = strconv.ParseInt(last.Header.Get("Wasmfleet-Revision"), 10, 64)
			}
		}
		lag := cur.Header.Revision - published
		t.Logf("round %d: killed after %d creates; etcd at %d, stream at %d", round, created.Load(), cur.Header.Revision, published)
		if lag > 0 {
			lagged++
		}
	}
	if lagged == 0 {
		t.Fatal("the publisher never lagged etcd at a kill; the test proved nothing")
	}

	startChild(t, bin, args, apiURL)
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
