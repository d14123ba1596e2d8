// Package components runs the control plane's API clients — the scheduler
// and the controller manager — from a server.Config: each under leader
// election, talking to the API over HTTPS with a kubeconfig or the
// server's loopback credentials, never to etcd. `wasmfleet server` runs
// them in-process (server.Config.Components = For(cfg)); `wasmfleet
// scheduler` and `wasmfleet controller-manager` run one each.
package components

import (
	"context"
	"log/slog"

	"k8s.io/client-go/rest"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/nodelifecycle"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/podgc"
	"github.com/wasmfleet/wasmfleet/controlplane/scheduler"
	"github.com/wasmfleet/wasmfleet/controlplane/scheduler/imagearch"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
)

// For returns the components cfg does not disable, for
// server.Config.Components.
func For(cfg server.Config) []server.Component {
	var cs []server.Component
	if !cfg.DisableScheduler {
		cs = append(cs, server.Component{Name: "scheduler", Run: func(ctx context.Context, rc *rest.Config, log *slog.Logger) error {
			return RunScheduler(ctx, rc, cfg, log)
		}})
	}
	if !cfg.DisableControllerManager {
		cs = append(cs, server.Component{Name: "controller-manager", Run: func(ctx context.Context, rc *rest.Config, log *slog.Logger) error {
			return RunControllerManager(ctx, rc, cfg, log)
		}})
	}
	return cs
}

// RunScheduler runs the scheduler against the API at rc while it holds the
// kube-system/kube-scheduler Lease, until ctx ends. With
// cfg.SchedulerImageArchLookup the scheduler's image architecture filter
// reads images' manifests from their registries (imagearch), with a cache
// that outlives leader terms.
func RunScheduler(ctx context.Context, rc *rest.Config, cfg server.Config, log *slog.Logger) error {
	opts := scheduler.Options{Logger: log}
	if !cfg.SchedulerImageArchLookup {
		return scheduler.RunElected(ctx, rc, opts, cfg.LeaderElection())
	}
	res := imagearch.New(imagearch.Options{Logger: log})
	defer res.Close()
	opts.ImageArchitectures = res
	return scheduler.RunElected(ctx, rc, opts, cfg.LeaderElection())
}

// RunControllerManager runs the controllers against the API at rc while
// it holds the kube-system/kube-controller-manager Lease, until ctx ends.
func RunControllerManager(ctx context.Context, rc *rest.Config, cfg server.Config, log *slog.Logger) error {
	return controllers.Run(ctx, rc, controllers.Options{
		NodeLifecycle:  nodelifecycle.Options{NodeMonitorGracePeriod: cfg.NodeMonitorGracePeriod},
		PodGC:          podgc.Options{TerminatedPodGCThreshold: cfg.TerminatedPodGCThreshold},
		LeaderElection: cfg.LeaderElection(),
		Logger:         log,
	})
}
