// Package controllers is the controller manager: it runs every wasmfleet
// controller (replicaset, deployment, daemonset, statefulset, job, cronjob,
// ttlafterfinished, nodelifecycle, namespace, gc, podgc, resourcequota,
// disruption, serviceaccount, rootcacert — each in its own package below
// this one — and
// replicationcontroller, the replicaset package's logic on
// ReplicationControllers) against the API over HTTPS, on one shared
// informer factory, while holding the kube-system/kube-controller-manager
// Lease. Only the apiserver touches etcd; the controllers see the cluster
// through client-go like any client.
package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/cronjob"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/daemonset"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/deployment"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/disruption"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/gc"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/job"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/namespace"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/nodelifecycle"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/podgc"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/replicaset"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/resourcequota"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/rootcacert"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/serviceaccount"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/statefulset"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/ttlafterfinished"
	"github.com/wasmfleet/wasmfleet/controlplane/leaderelection"
)

// LeaseName is the Lease (in kube-system) the controller manager holds
// while it runs, the same name Kubernetes' controller manager uses.
const LeaseName = "kube-controller-manager"

// Options configure the controller manager.
type Options struct {
	// Workers per controller (default 5, as kube's concurrent syncs).
	Workers int
	// NodeLifecycle tunes the node lifecycle controller (grace periods).
	NodeLifecycle nodelifecycle.Options
	// PodGC tunes the pod garbage collector; its TerminatedPodGCThreshold
	// of 0 disables collecting finished pods (the server's setting
	// defaults to Kubernetes' 12500).
	PodGC podgc.Options
	// LeaderElection: Identity and timings; the Lease is
	// kube-system/kube-controller-manager.
	LeaderElection leaderelection.Config
	Logger         *slog.Logger
}

// Run runs the controllers while holding the Lease, until ctx ends. rc's
// rate limits are raised (client-go's default 5 qps would make a
// 1,000-replica Deployment take minutes).
func Run(ctx context.Context, rc *rest.Config, opts Options) error {
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = 2000, 4000
	rc.UserAgent = "wasmfleet-controller-manager"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	mc, err := metadata.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = 5
	}
	le := opts.LeaderElection
	le.Namespace, le.Name, le.Logger = "kube-system", LeaseName, log
	return leaderelection.Run(ctx, client, le, func(ctx context.Context) error {
		// A fresh factory per term: informers of a lost term are stopped.
		ctx, cancel := context.WithCancel(ctx)
		factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
		ctrls := []controller.Controller{
			replicaset.New(client, factory, log),
			replicaset.NewForReplicationControllers(client, factory, log),
			deployment.New(client, factory, log),
			daemonset.New(client, factory, log),
			statefulset.New(client, factory, log),
			job.New(client, factory, log),
			cronjob.New(client, factory, cronjob.Options{}, log),
			ttlafterfinished.New(client, factory, ttlafterfinished.Options{}, log),
			nodelifecycle.New(client, factory, opts.NodeLifecycle, log),
			namespace.New(client, dyn, factory, namespace.Options{}, log),
			gc.New(client, mc, gc.Options{}, log),
			podgc.New(client, factory, opts.PodGC, log),
			resourcequota.New(client, mc, factory, log),
			disruption.New(client, factory, log),
			serviceaccount.New(client, factory, log),
			rootcacert.New(client, factory, log),
		}
		factory.Start(ctx.Done())
		defer factory.Shutdown()
		defer cancel()
		g, ctx := errgroup.WithContext(ctx)
		for _, c := range ctrls {
			g.Go(func() error {
				if err := c.Run(ctx, workers); err != nil {
					return fmt.Errorf("%s: %w", c.Name(), err)
				}
				return nil
			})
		}
		return g.Wait()
	})
}
