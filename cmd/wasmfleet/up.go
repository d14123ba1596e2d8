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
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/wasmfleet/wasmfleet/controlplane/modules"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/nodeagent"
)

// upCmd is the README's run command: a control plane and a local agent in
// the foreground, with the hello example pushed and running.
func upCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "up", Short: "Run a control plane and a local agent, with the hello example running", Args: cobra.NoArgs}
	fs := cmd.Flags()
	addServerFlags(fs, "warn")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		// The server's file: with-agent, which up always is, is no typo.
		_, cfg, log, err := loadServerConfig(fs, stderr, serverCmd(ctx, stderr, "server", "").Flags())
		if err != nil {
			return err
		}
		if cfg.NATSURL != "" {
			// The local agent joins through the embedded NATS only.
			return fmt.Errorf("up needs the embedded NATS: its agent cannot join a control plane with --nats-url")
		}
		serverRuntime(cfg)
		return up(ctx, cfg, stdout, log)
	}
	return cmd
}

func up(ctx context.Context, cfg server.Config, stdout io.Writer, log *slog.Logger) error {
	dir := cfg.DataDir
	srv, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(ctx) })
	node, err := startLocalAgent(ctx, g, srv, dir, log)
	if err != nil || node == "" {
		return errors.Join(err, g.Wait())
	}
	g.Go(func() error {
		if err := deployHello(ctx, dir, stdout); err != nil {
			return fmt.Errorf("hello example: %w", err)
		}
		kc, _ := filepath.Abs(filepath.Join(dir, server.KubeconfigFile))
		fmt.Fprintf(stdout, "\nwasmfleet is up: control plane at %s, node %s, example Deployment hello running.\n\n"+
			"  export KUBECONFIG=%s\n  kubectl get deploy,pods -o wide\n  kubectl logs -f deploy/hello\n\n"+
			"Ctrl-C stops everything (state stays in %s).\n", srv.APIURL(), node, kc, dir)
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
func startLocalAgent(ctx context.Context, g *errgroup.Group, srv *server.Server, dir string, log *slog.Logger) (string, error) {
	select {
	case <-srv.Ready():
	case <-ctx.Done():
		return "", nil
	}
	node, _ := os.Hostname()
	cfg := nodeagent.Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName = srv.APIURL(), filepath.Join(dir, server.NodeTokenFile), node
	cfg.DataDir = filepath.Join(dir, "agent")
	agent, err := nodeagent.NewAgent(cfg, log, nodeagent.WithImageRuntime(containerdImages))
	if err != nil {
		return "", err
	}
	g.Go(func() error { return agent.Run(ctx) })
	return node, nil
}

// deployHello builds examples/hello for wasip1, pushes it as hello:v1,
// applies the Deployment in examples/hello/hello.yaml (the scheduler places
// its pod on the local node) and waits until it is available.
func deployHello(ctx context.Context, dir string, stdout io.Writer) error {
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
	manifest, err := os.ReadFile(filepath.Join("examples", "hello", "hello.yaml"))
	if err != nil {
		return err
	}
	var dep appsv1.Deployment
	if err := yaml.UnmarshalStrict(manifest, &dep); err != nil {
		return fmt.Errorf("examples/hello/hello.yaml: %w", err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	deps := cs.AppsV1().Deployments("default")
	if _, err := deps.Create(ctx, &dep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d, err := deps.Get(ctx, dep.Name, metav1.GetOptions{})
		if err == nil && d.Status.AvailableReplicas > 0 && d.Status.UpdatedReplicas == d.Status.Replicas {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deployment hello is not available after 2m (see kubectl describe deploy,pods): %v", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
