package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/wasmfleet/wasmfleet/controlplane/components"
	"github.com/wasmfleet/wasmfleet/controlplane/modules"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/nodeagent"
)

// upCmd is the README's run command: a control plane and a local agent in
// the foreground, with the hello example pushed and running.
func upCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "up", Short: "Run a control plane and a local agent, with the hello example running", Args: cobra.NoArgs}
	dataDir := cmd.Flags().String("data-dir", ".wasmfleet", "directory for all state")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		return up(ctx, *dataDir, stdout, log)
	}
	return cmd
}

func up(ctx context.Context, dir string, stdout io.Writer, log *slog.Logger) error {
	cfg := server.Defaults()
	cfg.DataDir = dir
	cfg.Components = components.For(cfg)
	srv, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(ctx) })
	node, acfg, err := startLocalAgent(ctx, g, srv, dir, log)
	if err != nil || node == "" {
		return errors.Join(err, g.Wait())
	}
	g.Go(func() error {
		if err := deployHello(ctx, dir, node, stdout); err != nil {
			return fmt.Errorf("hello example: %w", err)
		}
		kc, _ := filepath.Abs(filepath.Join(dir, server.KubeconfigFile))
		fmt.Fprintf(stdout, "\nwasmfleet is up: control plane at %s, node %s, example pod hello running.\n\n"+
			"  export KUBECONFIG=%s\n  kubectl get nodes,pods -o wide\n  kubectl describe pod hello\n\n"+
			"Its output is in %s. Ctrl-C stops everything.\n", srv.APIURL(), node, kc,
			filepath.Join(acfg.DataDir, "pods", "<pod uid>", "logs", "hello", "0", "container.log"))
		return nil
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// startLocalAgent waits for srv and runs a node agent for this machine
// (named after the host) in g, keeping its state in dir/agent. It returns
// "" when ctx ended first.
func startLocalAgent(ctx context.Context, g *errgroup.Group, srv *server.Server, dir string, log *slog.Logger) (string, nodeagent.Config, error) {
	select {
	case <-srv.Ready():
	case <-ctx.Done():
		return "", nodeagent.Config{}, nil
	}
	node, _ := os.Hostname()
	cfg := nodeagent.Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName = srv.APIURL(), filepath.Join(dir, server.NodeTokenFile), node
	cfg.DataDir = filepath.Join(dir, "agent")
	agent, err := nodeagent.NewAgent(cfg, log)
	if err != nil {
		return "", cfg, err
	}
	g.Go(func() error { return agent.Run(ctx) })
	return node, cfg, nil
}

// deployHello builds examples/hello for wasip1, pushes it as hello:v1 and
// runs examples/hello/pod.yaml on node.
func deployHello(ctx context.Context, dir, node string, stdout io.Writer) error {
	wasmFile := filepath.Join(dir, "examples", "hello.wasm")
	build := exec.CommandContext(ctx, "go", "build", "-o", wasmFile, "./examples/hello")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build examples/hello (run up from the repository's root): %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(dir, server.KubeconfigFile)
	mc, err := newModuleClient(kubeconfig)
	if err != nil {
		return err
	}
	ref, _ := modules.ParseRef("hello:v1")
	if _, err := mc.push(ctx, ref, wasmFile, io.Discard); err != nil {
		return err
	}
	manifest, err := os.ReadFile(filepath.Join("examples", "hello", "pod.yaml"))
	if err != nil {
		return err
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(manifest, &pod); err != nil {
		return fmt.Errorf("examples/hello/pod.yaml: %w", err)
	}
	pod.Spec.NodeName = node
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	pods := cs.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, &pod, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod hello is not Running after 2m (see kubectl describe pod hello): %v %+v", err, p.Status.ContainerStatuses)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
