package scheduler

import (
	"context"
	"fmt"
	"log/slog"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/wasmfleet/wasmfleet/controlplane/leaderelection"
)

// LeaseName is the Lease (in kube-system) the scheduler holds while it
// schedules, the same name kube-scheduler uses.
const LeaseName = "kube-scheduler"

// RunElected schedules through the API at rc while holding the Lease, with
// a fresh informer factory per term, until ctx ends. rc's rate limits are
// raised: binding 1,000 pods/s needs far more than client-go's 5 qps.
func RunElected(ctx context.Context, rc *rest.Config, opts Options, le leaderelection.Config) error {
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = 5000, 10000
	rc.UserAgent = "wasmfleet-scheduler"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	le.Namespace, le.Name, le.Logger = "kube-system", LeaseName, opts.Logger
	return leaderelection.Run(ctx, client, le, func(ctx context.Context) error {
		factory := informers.NewSharedInformerFactory(client, 0)
		s, err := New(client, factory, opts)
		if err != nil {
			return err
		}
		defer factory.Shutdown()
		return s.Run(ctx)
	})
}
