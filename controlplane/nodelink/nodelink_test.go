package nodelink_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/modules"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink/linkserver"
	"github.com/wasmfleet/wasmfleet/controlplane/pki"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

type cluster struct {
	dir    string
	url    string
	token  string
	http   *http.Client
	client *kubernetes.Clientset
}

// startCluster runs a whole control plane (embedded etcd and NATS) until
// the test ends, and trusts its CA the way a joining node does: pinned by
// the join token.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	tc := testcluster.Start(t)
	tokBytes, err := os.ReadFile(tc.NodeToken())
	if err != nil {
		t.Fatal(err)
	}
	jt, err := pki.ParseJoinToken(string(tokBytes))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := pki.FetchCA(context.Background(), tc.URL, jt)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	rc, err := clientcmd.BuildConfigFromFlags("", tc.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{
		dir:    tc.DataDir,
		url:    tc.URL,
		token:  jt.String(),
		http:   &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 30 * time.Second},
		client: cs,
	}
}

// join posts body with the bearer token and returns the status and body.
func (c *cluster) join(t *testing.T, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.url+nodelink.JoinPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *cluster) joinNode(t *testing.T, node string) nodelink.JoinResponse {
	t.Helper()
	code, b := c.join(t, c.token, []byte(`{"nodeName":"`+node+`"}`))
	if code != http.StatusOK {
		t.Fatalf("join %s: %d %s", node, code, b)
	}
	var r nodelink.JoinResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// nodeConn connects with a node's credentials; permission errors arrive
// on the returned channel.
func nodeConn(t *testing.T, r nodelink.JoinResponse, password string) (*nats.Conn, <-chan error, error) {
	t.Helper()
	errs := make(chan error, 64)
	nc, err := nats.Connect(r.NATSURL,
		nats.UserInfo(r.NATSUser, password),
		nats.CustomInboxPrefix(r.NATSInboxPrefix),
		nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(nc.Close)
	return nc, errs, nil
}

// wantViolation waits for a permissions violation that names subject.
func wantViolation(t *testing.T, errs <-chan error, what, subject string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case err := <-errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), subject) {
				return
			}
		case <-timeout:
			t.Fatalf("%s %s: no permissions violation", what, subject)
		}
	}
}

func boundPod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:         node,
			RuntimeClassName: ptr("wasm"),
			Containers:       []corev1.Container{{Name: "main", Image: "hello:v1"}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

func TestJoinAndNodeConfinement(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const node, other = "edge-1.site-a", "edge-2"

	r := c.joinNode(t, node)
	if r.NodeName != node || r.NATSUser != "node:"+node || len(r.NATSPassword) < 40 || !strings.HasPrefix(r.NATSURL, "nats://") {
		t.Fatalf("join answer %+v", r)
	}
	if r.ConsumerName != nodelink.ConsumerName(node) || r.FilterSubject != subjects.NodeFilter(node) || r.Stream != subjects.DefaultStream {
		t.Fatalf("join answer %+v", r)
	}

	// The stored credential holds the hash only.
	sec, err := c.client.CoreV1().Secrets("kube-system").Get(ctx, "wasmfleet-node-"+node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(sec)
	if sec.Type != linkserver.CredentialType || string(sec.Data["nodeName"]) != node || len(sec.Data["sha256"]) != 32 || sec.UID == "" || sec.CreationTimestamp.IsZero() {
		t.Fatalf("stored credential %s", raw)
	}
	if bytes.Contains(raw, []byte(r.NATSPassword)) {
		t.Fatal("stored credential holds the plaintext secret")
	}

	nc, errs, err := nodeConn(t, r, r.NATSPassword)
	if err != nil {
		t.Fatalf("node connects: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, subjects.DefaultStream); err != nil {
		t.Fatalf("stream info: %v", err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, subjects.DefaultStream, jetstream.ConsumerConfig{
		Durable:       r.ConsumerName,
		FilterSubject: r.FilterSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("create own filtered consumer: %v", err)
	}
	if _, err := cons.Info(ctx); err != nil {
		t.Fatalf("consumer info: %v", err)
	}

	// Its own pod arrives through the real apiserver → etcd → publisher path;
	// the other node's does not.
	if _, err := c.client.CoreV1().Pods("default").Create(ctx, boundPod("theirs", other), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Pods("default").Create(ctx, boundPod("mine", node), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for m := range batch.Messages() {
		got = append(got, m)
	}
	if len(got) != 1 || got[0].Subject() != subjects.NodePodSubject(node, "default", "mine") {
		t.Fatalf("node received %d messages (err %v), want its pod on %s", len(got), batch.Error(), subjects.NodePodSubject(node, "default", "mine"))
	}
	if err := got[0].DoubleAck(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}

	// Denied: other nodes' subjects, object events, unfiltered or foreign
	// consumers, publishing events.
	for _, subj := range []string{subjects.NodeFilter(other), "wasmfleet.events.>", "_INBOX.>", ">"} {
		if _, err := nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		wantViolation(t, errs, "subscribe", subj)
	}
	if err := nc.Publish("wasmfleet.events.x", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, errs, "publish", "wasmfleet.events.x")
	if err := nc.Publish("wasmfleet.agent.edge-2.status", []byte("forged")); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, errs, "publish", "wasmfleet.agent.edge-2.status")
	if err := nc.Publish("wasmfleet.agent."+subjects.EncodeToken(node)+".status", []byte("ok")); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]jetstream.ConsumerConfig{
		"unfiltered":            {Durable: r.ConsumerName, AckPolicy: jetstream.AckExplicitPolicy},
		"other node's filter":   {Durable: r.ConsumerName, FilterSubject: subjects.NodeFilter(other)},
		"all nodes":             {Durable: r.ConsumerName, FilterSubject: "wasmfleet.nodes.>"},
		"another consumer name": {Durable: "node-edge-2", FilterSubject: r.FilterSubject},
		"ephemeral unfiltered":  {},
		"multi-filter":          {Durable: r.ConsumerName, FilterSubjects: []string{r.FilterSubject, "wasmfleet.events.>"}},
	} {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.CreateOrUpdateConsumer(cctx, subjects.DefaultStream, cfg)
		ccancel()
		if err == nil {
			t.Errorf("%s consumer: created", name)
		}
		wantViolation(t, errs, name+" consumer", "$JS.API.CONSUMER.CREATE."+subjects.DefaultStream)
	}
	// Reading another node's consumer is denied too.
	if err := nc.Publish("$JS.API.CONSUMER.MSG.NEXT."+subjects.DefaultStream+".node-edge-2", []byte(`{"batch":1}`)); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, errs, "publish", "$JS.API.CONSUMER.MSG.NEXT."+subjects.DefaultStream+".node-edge-2")

	// The module store is readable, not writable.
	wasm := []byte("\x00asm\x01\x00\x00\x00")
	adminURL, err := os.ReadFile(filepath.Join(c.dir, server.NATSURLFile))
	if err != nil {
		t.Fatal(err)
	}
	anc, err := nats.Connect(strings.TrimSpace(string(adminURL)))
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	ajs, _ := jetstream.New(anc)
	amods, err := modules.Bind(ctx, ajs, modules.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	digest, _, err := amods.Put(ctx, "tiny:v1", bytes.NewReader(wasm))
	if err != nil {
		t.Fatal(err)
	}
	nmods, err := modules.Bind(ctx, js, modules.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatalf("node binds module store: %v", err)
	}
	if d, err := nmods.Resolve(ctx, "tiny:v1"); err != nil || d != digest {
		t.Fatalf("node resolves tiny:v1: %q %v", d, err)
	}
	rc, _, err := nmods.Open(ctx, digest)
	if err != nil {
		t.Fatalf("node opens module: %v", err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(body, wasm) {
		t.Fatalf("node reads module: %q %v", body, err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	if _, _, err := nmods.Put(pctx, "evil:v1", bytes.NewReader(wasm)); err == nil {
		t.Error("node wrote the module store")
	}
	pcancel()

	// It cannot answer the control plane's requests on arbitrary reply
	// subjects (e.g. forge JetStream publish acks).
	own, err := nc.SubscribeSync(subjects.NodeFilter(node))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	adminSubj := "wasmfleet.nodes." + subjects.EncodeToken(node) + ".ping"
	if err := anc.PublishRequest(adminSubj, "_INBOX.admin-reply", []byte("ping")); err != nil {
		t.Fatal(err)
	}
	m, err := own.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Respond([]byte("forged")); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, errs, "reply", "_INBOX.admin-reply")

	// A wrong password, an unknown node and a node without a credential
	// are refused.
	if _, _, err := nodeConn(t, r, r.NATSPassword+"x"); err == nil {
		t.Error("wrong password accepted")
	}
	if _, _, err := nodeConn(t, nodelink.JoinResponse{NATSURL: r.NATSURL, NATSUser: "node:" + other, NATSInboxPrefix: "_INBOX.x"}, r.NATSPassword); err == nil {
		t.Error("another node's user with this password accepted")
	}
	if _, _, err := nodeConn(t, nodelink.JoinResponse{NATSURL: r.NATSURL, NATSUser: "admin", NATSInboxPrefix: "_INBOX.x"}, r.NATSPassword); err == nil {
		t.Error("admin with the node's password accepted")
	}

	// Joining again rotates: the old secret stops working, the new works.
	r2 := c.joinNode(t, node)
	if r2.NATSPassword == r.NATSPassword {
		t.Fatal("re-join returned the same secret")
	}
	if _, _, err := nodeConn(t, r, r.NATSPassword); err == nil {
		t.Error("old secret still accepted after rotation")
	}
	if _, _, err := nodeConn(t, r2, r2.NATSPassword); err != nil {
		t.Errorf("new secret refused: %v", err)
	}
	sec2, err := c.client.CoreV1().Secrets("kube-system").Get(ctx, "wasmfleet-node-"+node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec2.UID != sec.UID || bytes.Equal(sec2.Data["sha256"], sec.Data["sha256"]) {
		t.Errorf("rotation: uid %s→%s, hash changed %v", sec.UID, sec2.UID, !bytes.Equal(sec2.Data["sha256"], sec.Data["sha256"]))
	}
}

func TestJoinRefusals(t *testing.T) {
	c := startCluster(t)
	jt, err := pki.ParseJoinToken(c.token)
	if err != nil {
		t.Fatal(err)
	}
	okBody := []byte(`{"nodeName":"n1"}`)
	wrongCA := jt
	wrongCA.CAHash = strings.Repeat("0", 64)
	wrongSecret := jt
	wrongSecret.Secret = strings.Repeat("A", len(jt.Secret))
	for _, tc := range []struct {
		name  string
		token string
		body  []byte
		code  int
	}{
		{"id.secret form", jt.ID + "." + jt.Secret, okBody, http.StatusOK},
		{"no token", "", okBody, http.StatusUnauthorized},
		{"wrong secret", wrongSecret.String(), okBody, http.StatusUnauthorized},
		{"wrong CA pin", wrongCA.String(), okBody, http.StatusUnauthorized},
		{"garbage", "nope", okBody, http.StatusUnauthorized},
		{"wrong token before bad body", "nope", []byte("{"), http.StatusUnauthorized},
		{"uppercase name", c.token, []byte(`{"nodeName":"Node1"}`), http.StatusUnprocessableEntity},
		{"empty name", c.token, []byte(`{"nodeName":""}`), http.StatusUnprocessableEntity},
		{"wildcard name", c.token, []byte(`{"nodeName":"a.*"}`), http.StatusUnprocessableEntity},
		{"long name", c.token, []byte(`{"nodeName":"` + strings.Repeat("a", 254) + `"}`), http.StatusUnprocessableEntity},
		{"not JSON", c.token, []byte("{"), http.StatusBadRequest},
		{"huge body", c.token, append([]byte(`{"nodeName":"n1","x":"`), bytes.Repeat([]byte("a"), 65<<10)...), http.StatusRequestEntityTooLarge},
	} {
		code, b := c.join(t, tc.token, tc.body)
		if code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.code)
			continue
		}
		if code != http.StatusOK {
			var st metav1.Status
			if err := json.Unmarshal(b, &st); err != nil || st.Kind != "Status" || int(st.Code) != code {
				t.Errorf("%s: body %s is not a Status", tc.name, b)
			}
		}
	}
	// GET is not a join.
	resp, err := c.http.Get(c.url + nodelink.JoinPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /join: %d", resp.StatusCode)
	}
	// No credential is stored for refused joins.
	if _, err := c.client.CoreV1().Secrets("kube-system").Get(context.Background(), "wasmfleet-node-Node1", metav1.GetOptions{}); err == nil {
		t.Error("refused join stored a credential")
	}
}
