package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/spf13/pflag"
	"github.com/wasmfleet/wasmfleet/internal/agentcmd"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

// TestAgentCommand runs `wasmfleet agent` against a control plane: the node
// registers with its labels and a wasm pod bound to it runs.
func TestAgentCommand(t *testing.T) {
	cp := testcluster.Start(t)
	ctx := context.Background()

	agentCtx, stopAgent := context.WithCancel(ctx)
	var stderr bytes.Buffer
	agentDone := make(chan int, 1)
	agentDir := t.TempDir()
	t.Cleanup(func() { stopGuestHost(t, agentDir) })
	go func() {
		agentDone <- run(agentCtx, []string{"agent", "--server", cp.URL, "--token-file", cp.NodeToken(),
			"--node-name", "edge-9", "--data-dir", agentDir, "--labels", "site=north", "--allow-file-modules", "--lease-renew-interval", "1s"}, &bytes.Buffer{}, &stderr)
	}()

	rc, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	admin := kubernetes.NewForConfigOrDie(rc)
	tiny, _ := filepath.Abs("../../examples/tiny/tiny.wasm")
	if _, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "tiny"},
		Spec:       corev1.PodSpec{NodeName: "edge-9", RuntimeClassName: ptrTo("wasm"), Containers: []corev1.Container{{Name: "main", Image: "file://" + tiny}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, errN := admin.CoreV1().Nodes().Get(ctx, "edge-9", metav1.GetOptions{})
		p, errP := admin.CoreV1().Pods("default").Get(ctx, "tiny", metav1.GetOptions{})
		if errN == nil && errP == nil && n.Labels["site"] == "north" && p.Status.Phase == corev1.PodRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %v / pod %v not there after 60s; agent log:\n%s", errN, p.Status, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopAgent()
	if code := <-agentDone; code != 0 {
		t.Fatalf("agent exited %d:\n%s", code, stderr.String())
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestAgentYAMLDocumentsFlags: every flag of `wasmfleet agent` is a key of
// configs/agent.yaml (nodeagent's TestAgentYAMLDocumentsDefaults checks the
// values against the defaults).
func TestAgentYAMLDocumentsFlags(t *testing.T) {
	cmd := agentCmd(context.Background(), &bytes.Buffer{})
	if err := cmd.Flags().Parse([]string{"--config", "../../configs/agent.yaml"}); err != nil {
		t.Fatal(err)
	}
	v, err := agentcmd.LoadConfig(cmd.Flags())
	if err != nil {
		t.Fatal(err)
	}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" && !v.InConfig(f.Name) {
			t.Errorf("configs/agent.yaml does not document %q", f.Name)
		}
	})
}
