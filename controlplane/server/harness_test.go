package server_test

import (
	"crypto/tls"
	"net/http"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

// cluster is a control plane running in the test process on random
// loopback ports.
type cluster struct {
	dir        string
	kubeconfig string
	url        string
	rest       *rest.Config
	client     *kubernetes.Clientset
	stop       func()
}

// startCluster runs a control plane until the test ends (or stop is called).
func startCluster(t *testing.T, cfg server.Config) *cluster {
	t.Helper()
	tc := testcluster.StartWith(t, cfg)
	kc := tc.Kubeconfig()
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{dir: cfg.DataDir, kubeconfig: kc, url: tc.URL, rest: rc, client: cs, stop: tc.Stop}
}

func insecure() *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
}
