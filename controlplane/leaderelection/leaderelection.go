// Package leaderelection runs a component only while it holds a
// coordination.k8s.io Lease, so two control planes never run two active
// schedulers or controller managers. It wraps client-go's leader elector
// (the same Lease protocol kube-scheduler and kube-controller-manager use)
// and adds what an in-process component needs: the work is waited for
// before the next campaign, and losing the lease means campaigning again
// instead of exiting the process.
package leaderelection

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Config says which Lease to hold and how.
type Config struct {
	// Namespace and Name of the Lease (kube-system/<component>).
	Namespace, Name string
	// Identity of this candidate; empty means hostname_<random>.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod as client-go's (and
	// Kubernetes' defaults 15s, 10s, 2s when zero).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Logger                                    *slog.Logger
}

// DefaultIdentity is hostname_<random>, as Kubernetes components use.
func DefaultIdentity() string {
	host, _ := os.Hostname()
	return host + "_" + rand.String(8)
}

// Run campaigns for the Lease and runs work while holding it, with a
// context that ends when the Lease is lost or ctx ends. When work returns
// (or the Lease is lost), Run waits for it, and campaigns again; it returns
// nil when ctx ends and work's error if work fails while leading. On a
// clean stop the Lease is released so another candidate takes over at
// once; it is released only after work has returned, so the next leader
// never overlaps a stopping one.
func Run(ctx context.Context, client kubernetes.Interface, cfg Config, work func(context.Context) error) error {
	if cfg.Identity == "" {
		cfg.Identity = DefaultIdentity()
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	for ctx.Err() == nil {
		term, stop := context.WithCancel(ctx)
		var (
			wg      sync.WaitGroup
			workErr error // read after wg.Wait
			mu      sync.Mutex
			over    bool // the term ended: a late OnStartedLeading must not start work
		)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          lock,
			Name:          cfg.Name,
			LeaseDuration: cfg.LeaseDuration,
			RenewDeadline: cfg.RenewDeadline,
			RetryPeriod:   cfg.RetryPeriod,
			Callbacks: leaderelection.LeaderCallbacks{
				// client-go calls this in a goroutine of its own, which may
				// run only after le.Run has returned.
				OnStartedLeading: func(lctx context.Context) {
					mu.Lock()
					defer mu.Unlock()
					if over {
						return
					}
					log.Info("became leader")
					wg.Go(func() {
						err := work(lctx)
						if err != nil && lctx.Err() == nil {
							workErr = err
						}
						stop()
					})
				},
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			stop()
			return fmt.Errorf("leader election %s: %w", cfg.Name, err)
		}
		le.Run(term)
		stop()
		mu.Lock()
		over = true
		mu.Unlock()
		wg.Wait()
		release(lock, cfg.Identity, log)
		if workErr != nil {
			return fmt.Errorf("%s: %w", cfg.Name, workErr)
		}
		if ctx.Err() == nil {
			log.Warn("lost the lease; campaigning again")
		}
	}
	return nil
}

// release gives the Lease up if this candidate still holds it, as
// client-go's ReleaseOnCancel does, but only once the work has stopped.
func release(lock *resourcelock.LeaseLock, identity string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec, _, err := lock.Get(ctx)
	if err != nil || rec.HolderIdentity != identity {
		return
	}
	now := metav1.Now()
	err = lock.Update(ctx, resourcelock.LeaderElectionRecord{
		LeaderTransitions:    rec.LeaderTransitions,
		LeaseDurationSeconds: 1,
		RenewTime:            now,
		AcquireTime:          now,
	})
	if err != nil {
		log.Warn("release lease", "err", err)
	}
}
