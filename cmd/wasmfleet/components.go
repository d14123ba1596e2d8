package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/agentcmd"
)

// componentCmd runs the scheduler or the controller manager on its own: an
// API client with a kubeconfig (never etcd), under leader election, so
// several can run and one is active.
func componentCmd(ctx context.Context, stderr io.Writer, name, short string, run func(context.Context, *rest.Config, server.Config, *slog.Logger) error) *cobra.Command {
	d := server.Defaults()
	cmd := &cobra.Command{Use: name, Short: short, Args: cobra.NoArgs}
	fs := cmd.Flags()
	fs.String("config", "", "YAML config file (the keys of configs/server.yaml this component uses)")
	fs.String("kubeconfig", "", "kubeconfig of the cluster (default: $KUBECONFIG, then .wasmfleet/kubeconfig.yaml, then ~/.kube/config)")
	addLeaderElectFlags(fs, d)
	switch name {
	case "scheduler":
		addSchedulerFlags(fs, d)
	case "controller-manager":
		addControllerManagerFlags(fs, d)
	}
	fs.String("log-level", "info", "debug, info, warn or error")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		// The file may be the server's: its other keys are not typos.
		v, err := agentcmd.LoadConfig(fs, serverCmd(ctx, stderr, "server", "").Flags())
		if err != nil {
			return err
		}
		cfg := server.Defaults()
		if err := agentcmd.Unmarshal(v, &cfg); err != nil {
			return err
		}
		if err := errors.Join(cfg.ValidateComponents()...); err != nil {
			return err
		}
		log, err := agentcmd.NewLogger(stderr, v.GetString("log-level"))
		if err != nil {
			return err
		}
		rc, err := restConfig(v.GetString("kubeconfig"))
		if err != nil {
			return err
		}
		return run(ctx, rc, cfg, log.With("component", name))
	}
	return cmd
}

func addLeaderElectFlags(fs *pflag.FlagSet, d server.Config) {
	fs.Duration("leader-elect-lease-duration", d.LeaderElectLeaseDuration, "how long a leader's Lease lasts without renewal before another candidate takes over")
	fs.Duration("leader-elect-renew-deadline", d.LeaderElectRenewDeadline, "how long a leader keeps trying to renew before it stops leading")
	fs.Duration("leader-elect-retry-period", d.LeaderElectRetryPeriod, "how often candidates try to acquire or renew the Lease")
}

// addControllerManagerFlags adds the settings of the controllers.
func addControllerManagerFlags(fs *pflag.FlagSet, d server.Config) {
	fs.Duration("node-monitor-grace-period", d.NodeMonitorGracePeriod, "how long a node may go without renewing its Lease before it is Unknown and tainted unreachable")
	fs.Int("terminated-pod-gc-threshold", d.TerminatedPodGCThreshold, "how many finished pods may exist before the oldest are deleted (0 or less: never)")
}
