package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/wasmfleet/wasmfleet/nodeagent"
)

// agentCmd runs a node agent: it joins the control plane at --server with
// the join token, then works over its one NATS connection.
func agentCmd(ctx context.Context, stderr io.Writer) *cobra.Command {
	d := nodeagent.Defaults()
	cmd := &cobra.Command{Use: "agent", Short: "Run a node agent that joins the control plane and runs the pods bound to this node", Args: cobra.NoArgs}
	fs := cmd.Flags()
	fs.String("config", "", "YAML config file (see configs/agent.yaml)")
	fs.String("server", "", "control plane URL, https://HOST:6443")
	fs.String("token-file", "", "file holding the node join token (the server's DATA_DIR/node-token)")
	fs.String("node-name", "", "the Node's name (default: the host name)")
	fs.String("data-dir", d.DataDir, "credentials, pod state, modules, compilation cache and logs")
	fs.String("labels", "", "extra Node labels, k=v,k2=v2")
	fs.Duration("lease-duration", d.LeaseDuration, "node Lease duration")
	fs.Duration("lease-renew-interval", d.LeaseRenewInterval, "how often the Lease is renewed")
	fs.Int("max-pods", d.MaxPods, "pod capacity")
	fs.String("reserved-cpu", d.ReservedCPU, "CPU kept from pods")
	fs.String("reserved-memory", d.ReservedMemory, "memory kept from pods")
	fs.Bool("allow-file-modules", d.AllowFileModules, "let wasm containers name modules as file:///…")
	fs.String("default-memory-limit", d.DefaultMemoryLimit, "memory cap of wasm guests without resources.limits.memory")
	fs.String("log-max-size", d.LogMaxSize, "rotate a container log past this size")
	fs.Int("log-max-files", d.LogMaxFiles, "container log files kept")
	fs.String("static-pod-path", d.StaticPodPath, "directory of static pod manifests (default DATA_DIR/manifests)")
	fs.Duration("file-check-frequency", d.FileCheckFrequency, "how often the static pod directory is read")
	fs.String("containerd-address", d.ContainerdAddress, "containerd socket for pods of runtime class runc (empty: no runc)")
	fs.String("containerd-namespace", d.ContainerdNamespace, "containerd namespace of the node's images and containers")
	fs.String("containerd-snapshotter", d.ContainerdSnapshotter, "containerd snapshotter (empty: containerd's default; native where overlayfs cannot mount)")
	fs.String("log-level", "info", "debug, info, warn or error")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := loadConfig(fs)
		if err != nil {
			return err
		}
		// --labels and WASMFLEET_LABELS are k=v text; the config file's
		// labels are a map.
		if s, ok := v.Get("labels").(string); ok {
			labels, err := nodeagent.ParseLabels(s)
			if err != nil {
				return err
			}
			v.Set("labels", labels)
		}
		cfg := nodeagent.Defaults()
		if err := v.Unmarshal(&cfg); err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if cfg.NodeName == "" {
			cfg.NodeName, _ = os.Hostname()
		}
		log, err := newLogger(stderr, v.GetString("log-level"))
		if err != nil {
			return err
		}
		a, err := nodeagent.NewAgent(cfg, log)
		if err != nil {
			return err
		}
		return a.Run(ctx)
	}
	return cmd
}
