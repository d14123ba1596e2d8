package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
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

// kubectl runs the real kubectl against c with stdin and returns its
// combined output; failure is a test failure unless allowFail.
func (c *cluster) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := c.kubectlErr(t, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *cluster) kubectlErr(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	bin := testenv.Kubectl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = c.kubectlEnv(t)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (c *cluster) kubectlEnv(t *testing.T) []string {
	home := filepath.Join(c.dir, "home")
	os.MkdirAll(home, 0o700)
	return append(os.Environ(), "KUBECONFIG="+c.kubeconfig, "HOME="+home, "KUBECACHEDIR="+filepath.Join(home, "cache"))
}

func insecure() *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
}
