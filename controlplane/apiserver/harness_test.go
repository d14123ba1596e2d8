package apiserver_test

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
	"github.com/wasmfleet/wasmfleet/controlplane/apiserver/validation"
	"github.com/wasmfleet/wasmfleet/controlplane/pki"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// cluster is an API server on a random loopback port over a real embedded
// etcd, reached with the admin kubeconfig.
type cluster struct {
	dir        string
	kubeconfig string
	url        string
	token      string
	etcd       *clientv3.Client
	api        *apiserver.Server
	rest       *rest.Config
	client     *kubernetes.Clientset
}

// testNodeToken authenticates as node edge-1.
const testNodeToken = "test-node-edge-1"

func startAPI(t testing.TB) *cluster { return startAPIWithKV(t, nil) }

// startAPIWithKV starts the API server on a KV client wrap returns from
// the embedded etcd's (a test's view of the server's etcd requests).
func startAPIWithKV(t testing.TB, wrap func(pb.KVClient) pb.KVClient) *cluster {
	return startAPIWith(t, wrap, nil)
}

// startAPIWith is startAPIWithKV with the server's Config changed by
// configure (when not nil).
func startAPIWith(t testing.TB, wrap func(pb.KVClient) pb.KVClient, configure func(*apiserver.Config)) *cluster {
	t.Helper()
	e, etcd := testenv.Etcd(t)
	kv := e.KV()
	if wrap != nil {
		kv = wrap(kv)
	}
	dir := t.TempDir()
	b, err := pki.LoadOrCreate(pki.Options{Dir: dir, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := apiserver.Config{
		Store: storage.NewWithKV(etcd, kv),
		Authenticate: func(tok string) (apiserver.User, bool) {
			switch {
			case b.IsAdminToken(tok):
				return apiserver.User{Name: "admin", Groups: []string{apiserver.Admin}}, true
			case tok == testNodeToken:
				return apiserver.User{Name: "system:node:edge-1", Groups: []string{"system:nodes"}}, true
			}
			return apiserver.User{}, false
		},
		Metrics:  prometheus.NewRegistry(),
		EventTTL: time.Hour,
	}
	if configure != nil {
		configure(&cfg)
	}
	api, err := apiserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ns := range []string{"default", "kube-system", "kube-node-lease"} {
		must(t, api.Ensure(ctx, &corev1.Namespace{TypeMeta: metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	must(t, api.Ensure(ctx, &nodev1.RuntimeClass{TypeMeta: metav1.TypeMeta{Kind: "RuntimeClass", APIVersion: "node.k8s.io/v1"}, ObjectMeta: metav1.ObjectMeta{Name: "wasm"}, Handler: "wasm"}))
	for _, pc := range validation.SystemPriorityClasses() {
		pc.TypeMeta = metav1.TypeMeta{Kind: "PriorityClass", APIVersion: "scheduling.k8s.io/v1"}
		must(t, api.Ensure(ctx, pc))
	}
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() { api.Run(runCtx); close(runDone) }()
	t.Cleanup(func() { stopRun(); <-runDone })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api, TLSConfig: b.ServerTLSConfig()}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	url := "https://" + l.Addr().String()
	kc := filepath.Join(dir, "kubeconfig.yaml")
	must(t, pki.WriteKubeconfig(kc, url, b.CACertPEM, "admin", b.AdminToken))
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{dir: dir, kubeconfig: kc, url: url, token: b.AdminToken, etcd: etcd, api: api, rest: rc, client: cs}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// kubectl runs the real kubectl with stdin and returns its combined output;
// a non-zero exit fails the test.
func (c *cluster) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	return testenv.MustKubectl(t, c.kubeconfig, c.dir, stdin, args...)
}

func (c *cluster) kubectlErr(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	return testenv.RunKubectl(t, c.kubeconfig, c.dir, stdin, args...)
}

func (c *cluster) kubectlCmd(t *testing.T, args ...string) *exec.Cmd {
	return testenv.KubectlCmd(t, c.kubeconfig, c.dir, args...)
}
