package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// TestUp runs the README's first command (on free ports): the control
// plane, a local agent and the hello Deployment, Running, with its output
// readable through kubectl logs. Its settings come from a flag, the
// environment and a config file, as the server's do.
func TestUp(t *testing.T) {
	testenv.Tool(t, "go") // up builds examples/hello
	dir := t.TempDir()
	apiAddr := testenv.FreeAddr(t)
	config := filepath.Join(dir, "up.yaml")
	if err := os.WriteFile(config, []byte("api-listen: "+apiAddr+"\netcd-peer-listen: "+testenv.FreeAddr(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	etcdAddr := testenv.FreeAddr(t)
	t.Setenv("WASMFLEET_ETCD_CLIENT_LISTEN", etcdAddr)
	t.Chdir("../..") // up runs from the repository's root
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"up", "--config", config, "--data-dir", dir, "--nats-listen", "127.0.0.1:0"}, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("up exited %d:\n%s", code, stderr.String())
		}
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(stdout.String(), "wasmfleet is up") {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("up exited %d before it was up:\n%s\n%s", code, stdout.String(), stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not up after 3m:\n%s\n%s", stdout.String(), stderr.String())
		}
	}
	for _, want := range []string{"control plane at https://" + apiAddr, "export KUBECONFIG=", "kubectl get deploy,pods -o wide", "kubectl logs -f deploy/hello"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("up's message lacks %q:\n%s", want, stdout.String())
		}
	}
	if c, err := net.Dial("tcp", etcdAddr); err != nil {
		t.Errorf("etcd is not at WASMFLEET_ETCD_CLIENT_LISTEN's %s: %v", etcdAddr, err)
	} else {
		c.Close()
	}
	cp := &testcluster.Cluster{DataDir: dir}
	pods, err := cp.Client(t).CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Spec.NodeName == "" {
		t.Fatalf("hello pods: %v %v", err, pods)
	}
	// The guest prints every 5s; its first line comes at once.
	for {
		out, err := testenv.RunKubectl(t, cp.Kubeconfig(), "", "", "logs", "deploy/hello")
		if err == nil && strings.Contains(out, "hello") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl logs deploy/hello: %q %v", out, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// As in Kubernetes, the namespace has its default ServiceAccount and
	// the cluster CA in kube-root-ca.crt (the controller manager's).
	ca := string(cp.RESTConfig(t).TLSClientConfig.CAData)
	for {
		sa, saErr := testenv.RunKubectl(t, cp.Kubeconfig(), "", "", "get", "serviceaccount", "default", "-o", "name")
		cm, cmErr := testenv.RunKubectl(t, cp.Kubeconfig(), "", "", "get", "configmap", "kube-root-ca.crt", "-o", `jsonpath={.data.ca\.crt}`)
		if saErr == nil && strings.TrimSpace(sa) == "serviceaccount/default" && cmErr == nil && cm == ca {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl get serviceaccount default: %q %v; configmap kube-root-ca.crt's ca.crt: %q %v, want %q", sa, saErr, cm, cmErr, ca)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// And, as kube-apiserver keeps it, the Service default/kubernetes.
	out, err := testenv.RunKubectl(t, cp.Kubeconfig(), "", "", "get", "service", "kubernetes", "--no-headers")
	if f := strings.Fields(out); err != nil || len(f) < 5 || strings.Join(f[:5], " ") != "kubernetes ClusterIP 10.43.0.1 <none> 443/TCP" {
		t.Fatalf("kubectl get service kubernetes: %q %v", out, err)
	}
}

// TestUpRefusesExternalNATS: up's agent joins through the embedded NATS,
// so an external one (here from the environment, over the server's
// documented config file) is refused at once.
func TestUpRefusesExternalNATS(t *testing.T) {
	t.Setenv("WASMFLEET_NATS_URL", "nats://127.0.0.1:1")
	var stdout, stderr testenv.Buffer
	if code := run(context.Background(), []string{"up", "--config", "../../configs/server.yaml", "--data-dir", t.TempDir()}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "up needs the embedded NATS") {
		t.Fatalf("up with WASMFLEET_NATS_URL: exit %d, %q", code, stderr.String())
	}
}
