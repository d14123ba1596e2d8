package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/components"
	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady polls /readyz until the publisher has caught up.
func waitReady(t *testing.T, c *cluster) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := get(t, c.url+"/readyz", "")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s after 60s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nextEvent reads the next event for subject from the stream.
func subscribe(t *testing.T, natsURL, subject string) jetstream.Consumer {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(context.Background(), subjects.DefaultStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	return cons
}

func nextMsg(t *testing.T, cons jetstream.Consumer) jetstream.Msg {
	t.Helper()
	m, err := cons.Next(jetstream.FetchMaxWait(30 * time.Second))
	if err != nil {
		t.Fatalf("no event: %v", err)
	}
	return m
}

func TestServerEmbeddedFilesHealthAndEvents(t *testing.T) {
	cfg := testcluster.Config(t, t.TempDir())
	c := startCluster(t, cfg)
	waitReady(t, c)
	for _, f := range []string{server.KubeconfigFile, server.NodeTokenFile, server.NATSURLFile} {
		st, err := os.Stat(filepath.Join(c.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	for _, p := range []string{"/livez", "/healthz", "/version"} {
		if code, body := get(t, c.url+p, ""); code != http.StatusOK {
			t.Errorf("%s = %d %s", p, code, body)
		}
	}
	for _, p := range []string{"/metrics", "/api", "/api/v1/namespaces", "/debug/pprof/"} {
		if code, _ := get(t, c.url+p, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without token = %d, want 401", p, code)
		}
	}
	natsURL, err := os.ReadFile(filepath.Join(c.dir, server.NATSURLFile))
	if err != nil {
		t.Fatal(err)
	}
	cons := subscribe(t, strings.TrimSpace(string(natsURL)), "wasmfleet.events.configmaps.default.>")
	ctx := context.Background()
	cm, err := c.client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "site.config"}, Data: map[string]string{"a": "1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := nextMsg(t, cons)
	if m.Subject() != "wasmfleet.events.configmaps.default.site~config" || m.Headers().Get("Wasmfleet-Type") != "ADDED" || m.Headers().Get("Wasmfleet-Revision") != cm.ResourceVersion {
		t.Fatalf("event %s %v, want ADDED rev %s", m.Subject(), m.Headers(), cm.ResourceVersion)
	}
	token := kubeconfigToken(t, c)
	code, body := get(t, c.url+"/metrics", token)
	if code != http.StatusOK || !strings.Contains(body, `apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} 1`) {
		t.Errorf("/metrics = %d, lacks the create counter:\n%.2000s", code, body)
	}
	for _, series := range []string{"etcd_request_duration_seconds", "wasmfleet_events_publish_duration_seconds"} {
		if !strings.Contains(body, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	// Profiling is on by default, for admins (kube-apiserver's --profiling).
	if code, body := get(t, c.url+"/debug/pprof/goroutine?debug=1", token); code != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("/debug/pprof/goroutine = %d %.300s", code, body)
	}

	// A restart on the same data dir keeps the CA, the tokens, the NATS
	// admin password (tools hold nats-url) and the data.
	kubeconfig, _ := os.ReadFile(c.kubeconfig)
	nodeToken, _ := os.ReadFile(filepath.Join(c.dir, server.NodeTokenFile))
	c.stop()
	c2 := startCluster(t, cfg)
	waitReady(t, c2)
	kubeconfig2, _ := os.ReadFile(c2.kubeconfig)
	nodeToken2, _ := os.ReadFile(filepath.Join(c2.dir, server.NodeTokenFile))
	if string(kubeconfig) != string(kubeconfig2) || string(nodeToken) != string(nodeToken2) {
		t.Error("restart changed the kubeconfig or the node token")
	}
	natsURL2, _ := os.ReadFile(filepath.Join(c2.dir, server.NATSURLFile))
	u1, _ := url.Parse(strings.TrimSpace(string(natsURL)))
	u2, _ := url.Parse(strings.TrimSpace(string(natsURL2)))
	if u1 == nil || u2 == nil || u1.User.String() != u2.User.String() {
		t.Error("restart changed the NATS admin credentials")
	}
	if _, err := c2.client.CoreV1().ConfigMaps("default").Get(ctx, "site.config", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	out := testenv.MustKubectl(t, c2.kubeconfig, c2.dir, "", "get", "runtimeclasses", "-o", "name")
	if out != "runtimeclass.node.k8s.io/runc\nruntimeclass.node.k8s.io/wasm\n" {
		t.Errorf("runtime classes: %q", out)
	}
}

// TestWaitingForEtcd: with an external etcd that does not answer, the
// server says it waits for it, and stops cleanly when asked.
func TestWaitingForEtcd(t *testing.T) {
	cfg := testcluster.Config(t, t.TempDir())
	cfg.EtcdEndpoints = []string{"http://" + testenv.FreeAddr(t)}
	var logs testenv.Buffer
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "waiting for etcd") {
		if time.Now().After(deadline) {
			t.Fatalf("no word after 30s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestAPIListenPortZero: with --api-listen HOST:0 the kubeconfig names
// the port the API got.
func TestAPIListenPortZero(t *testing.T) {
	cfg := testcluster.Config(t, t.TempDir())
	cfg.APIListen = "127.0.0.1:0"
	c := startCluster(t, cfg)
	if strings.HasSuffix(c.url, ":0") {
		t.Fatalf("API URL %s", c.url)
	}
	if out := testenv.MustKubectl(t, c.kubeconfig, c.dir, "", "get", "namespace", "default", "-o", "name"); out != "namespace/default\n" {
		t.Errorf("kubectl get namespace default: %q", out)
	}
}

// TestDataDirInUse: a second server on a data dir in use says so at once
// (etcd would wait for its database's lock, silently and for ever).
func TestDataDirInUse(t *testing.T) {
	cfg := testcluster.Config(t, t.TempDir())
	startCluster(t, cfg)
	second := testcluster.Config(t, cfg.DataDir)
	s, err := server.New(second, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err = s.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "is in use by another wasmfleet server") {
		t.Fatalf("second server: %v", err)
	}
}

// TestStopReleasesLeaderLeases: on a clean stop the scheduler and the
// controller manager give their Leases up (through the in-process API
// server, which stops after them), so that the next start leads at once
// instead of waiting for the Leases to expire.
func TestStopReleasesLeaderLeases(t *testing.T) {
	cfg := testcluster.Config(t, t.TempDir())
	cfg.Components = components.For(cfg)
	c := startCluster(t, cfg)
	waitReady(t, c)
	leases := []string{"kube-scheduler", "kube-controller-manager"}
	holders := func(c *cluster) []string {
		var hs []string
		for _, name := range leases {
			l, err := c.client.CoordinationV1().Leases("kube-system").Get(t.Context(), name, metav1.GetOptions{})
			if err != nil {
				return nil
			}
			hs = append(hs, ptr.Deref(l.Spec.HolderIdentity, ""))
		}
		return hs
	}
	deadline := time.Now().Add(30 * time.Second)
	for hs := holders(c); len(hs) != 2 || hs[0] == "" || hs[1] == ""; hs = holders(c) {
		if time.Now().After(deadline) {
			t.Fatalf("leases not held after 30s: %q", hs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.stop()
	cfg.Components = nil
	c2 := startCluster(t, cfg)
	waitReady(t, c2)
	if hs := holders(c2); len(hs) != 2 || hs[0] != "" || hs[1] != "" {
		t.Errorf("holders after a clean stop: %q, want both released", hs)
	}
}

// TestSystemObjectsComeBack: kube-node-lease, which the API lets one
// delete (as Kubernetes does), and the Service default/kubernetes are
// created again, as kube-apiserver's system namespaces and kubernetes
// service controllers do.
func TestSystemObjectsComeBack(t *testing.T) {
	defer server.SetSystemObjectsInterval(200 * time.Millisecond)()
	cfg := testcluster.Config(t, t.TempDir())
	cfg.Components = components.For(cfg) // the namespace controller
	c := startCluster(t, cfg)
	waitReady(t, c)
	ctx := t.Context()
	nss := c.client.CoreV1().Namespaces()
	before, err := nss.Get(ctx, "kube-node-lease", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := nss.Delete(ctx, "kube-node-lease", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	svcs := c.client.CoreV1().Services(metav1.NamespaceDefault)
	svc, err := svcs.Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, apiPort, _ := net.SplitHostPort(strings.TrimPrefix(c.rest.Host, "https://"))
	if p := svc.Spec.Ports; svc.Spec.ClusterIP != "10.43.0.1" || len(p) != 1 || p[0].Port != 443 || p[0].TargetPort.String() != apiPort || svc.Labels["provider"] != "kubernetes" {
		t.Fatalf("kubernetes Service: %+v %+v, want 10.43.0.1 443 → %s", svc.Labels, svc.Spec, apiPort)
	}
	// Its ports are set back, as kube-apiserver's reconciler does.
	if _, err := svcs.Patch(ctx, "kubernetes", types.MergePatchType, []byte(`{"spec":{"ports":[{"name":"https","port":443,"targetPort":1234}]}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := svcs.Get(ctx, "kubernetes", metav1.GetOptions{})
		if err == nil && got.Spec.Ports[0].TargetPort.String() == apiPort {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kubernetes Service's ports not set back within 30s: %v %v", err, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := svcs.Delete(ctx, "kubernetes", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		ns, err := nss.Get(ctx, "kube-node-lease", metav1.GetOptions{})
		again, serr := svcs.Get(ctx, "kubernetes", metav1.GetOptions{})
		if err == nil && ns.UID != before.UID && ns.Status.Phase == corev1.NamespaceActive && serr == nil && again.UID != svc.UID && again.Spec.ClusterIP == "10.43.0.1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-node-lease and the kubernetes Service not created again within 30s: %v %v; %v %v", err, ns, serr, again)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func kubeconfigToken(t *testing.T, c *cluster) string {
	t.Helper()
	if c.rest.BearerToken == "" {
		t.Fatal("kubeconfig has no token")
	}
	return c.rest.BearerToken
}

func TestServerExternalEtcdAndNATS(t *testing.T) {
	e, etcd := testenv.Etcd(t)
	n := testenv.NATS(t)
	cfg := testcluster.Config(t, t.TempDir())
	cfg.EtcdEndpoints = []string{e.Endpoint}
	cfg.NATSURL = n.URL()
	c := startCluster(t, cfg)
	waitReady(t, c)
	cons := subscribe(t, n.URL(), "wasmfleet.events.namespaces._.>")
	ctx := context.Background()
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "site-b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		m := nextMsg(t, cons)
		if m.Subject() == "wasmfleet.events.namespaces._.site-b" {
			break
		}
	}
	resp, err := etcd.Get(ctx, "/registry/namespaces/site-b", clientv3.WithKeysOnly())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("namespace not in the external etcd: %v %v", resp, err)
	}
	b, _ := os.ReadFile(filepath.Join(c.dir, server.NATSURLFile))
	if strings.TrimSpace(string(b)) != n.URL() {
		t.Errorf("nats-url = %q, want the external URL", b)
	}
}

// TestCompactor: history older than one compact interval goes (reads at an
// old revision get 410 Gone), and never past what was published.
func TestCompactor(t *testing.T) {
	cfg := testcluster.Config(t, t.TempDir())
	cfg.CompactInterval = 200 * time.Millisecond
	c := startCluster(t, cfg)
	waitReady(t, c)
	ctx := context.Background()
	cm, err := c.client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "old"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		// Keep writing so that newer revisions exist to compact to.
		if _, err := c.client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("new-%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := c.client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{ResourceVersion: cm.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("revision never compacted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRestartLeavesFilesAlone: a restart with the same settings reuses
// every file of the data dir as it is, without writing it again (tools may
// watch kubeconfig.yaml and nats-url, or mount them into containers).
func TestRestartLeavesFilesAlone(t *testing.T) {
	cfg := testcluster.Config(t, t.TempDir())
	cfg.NATSListen = testenv.FreeAddr(t)
	files := []string{server.KubeconfigFile, server.NodeTokenFile, server.NATSURLFile,
		"tls/ca.crt", "tls/ca.key", "tls/serving.crt", "tls/serving.key", "tls/admin-token", "tls/join-token"}
	stat := func() []os.FileInfo {
		var fis []os.FileInfo
		for _, f := range files {
			fi, err := os.Stat(filepath.Join(cfg.DataDir, f))
			if err != nil {
				t.Fatal(err)
			}
			fis = append(fis, fi)
		}
		return fis
	}
	startCluster(t, cfg).stop()
	before := stat()
	startCluster(t, cfg).stop()
	for i, fi := range stat() {
		if !os.SameFile(before[i], fi) || !fi.ModTime().Equal(before[i].ModTime()) {
			t.Errorf("the restart wrote %s again", files[i])
		}
		if secret := !strings.HasSuffix(files[i], ".crt"); secret && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", files[i], fi.Mode().Perm())
		}
	}
}

// TestEventsV1PublishedOnce: an events.k8s.io/v1 Event is the core/v1
// event stored under /registry/events: it is published once, on the core
// events' subject, as core/v1 JSON.
func TestEventsV1PublishedOnce(t *testing.T) {
	c := startCluster(t, testcluster.Config(t, t.TempDir()))
	waitReady(t, c)
	natsURL, err := os.ReadFile(filepath.Join(c.dir, server.NATSURLFile))
	if err != nil {
		t.Fatal(err)
	}
	cons := subscribe(t, strings.TrimSpace(string(natsURL)), "wasmfleet.events.events.default.>")
	ctx := t.Context()
	ev, err := c.client.EventsV1().Events("default").Create(ctx, &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: "sensor.1"},
		EventTime:           metav1.NowMicro(),
		ReportingController: "wasmfleet.io/test",
		ReportingInstance:   "test-1",
		Action:              "Testing",
		Reason:              "Tested",
		Regarding:           corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "sensor"},
		Note:                "recorded through events.k8s.io/v1",
		Type:                corev1.EventTypeNormal,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A core/v1 event after it marks the end of what the first one made.
	if _, err := c.client.CoreV1().Events("default").Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "marker"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "sensor"},
		Reason:         "Marker", Type: corev1.EventTypeNormal,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	m := nextMsg(t, cons)
	if m.Subject() != "wasmfleet.events.events.default.sensor~1" || m.Headers().Get("Wasmfleet-Type") != "ADDED" ||
		m.Headers().Get("Wasmfleet-Revision") != ev.ResourceVersion || m.Headers().Get("Wasmfleet-Key") != "/registry/events/default/sensor.1" {
		t.Fatalf("event %s %v", m.Subject(), m.Headers())
	}
	if p := string(m.Data()); !strings.Contains(p, `"apiVersion":"v1"`) || !strings.Contains(p, `"message":"recorded through events.k8s.io/v1"`) {
		t.Errorf("payload %s", p)
	}
	if m := nextMsg(t, cons); m.Subject() != "wasmfleet.events.events.default.marker" {
		t.Errorf("after the events.k8s.io/v1 event: %s %v, want the marker", m.Subject(), m.Headers())
	}
}
