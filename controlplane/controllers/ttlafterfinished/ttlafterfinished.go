// Package ttlafterfinished is wasmfleet's TTL-after-finished controller,
// as Kubernetes' ttlafterfinished controller: it deletes a finished Job
// (condition Complete or Failed True) that has spec.ttlSecondsAfterFinished
// once that many seconds have passed since it finished (the condition's
// lastTransitionTime).
//
// Jobs are queued when they are added or change, finished, with the field
// set and not being deleted; a Job whose TTL has not run out is queued
// again when it does, by a wake-up on the controller's clock (injectable,
// so tests need not wait). Before deleting, the Job is read again from the
// API and its TTL checked anew, so that a TTL raised in the meantime holds.
// The deletion propagates in the foreground (the garbage collector deletes
// the Job's pods first) and names the Job's UID: a Job created again under
// the same name is left alone. As Kubernetes' controller it records no
// events. CronJobs' Jobs are removed by their history limits instead,
// unless their template sets the field.
package ttlafterfinished

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// Name is the controller's name (queue, logs), Kubernetes'.
const Name = "ttl-after-finished-controller"

// Options configure the controller.
type Options struct {
	// Clock is the time TTLs are measured against and the wake-ups at
	// their expiry run on; nil is the real clock.
	Clock clock.WithDelayedExecution
}

// Controller is the TTL-after-finished controller. Create it with New;
// Run it once.
type Controller struct {
	client    kubernetes.Interface
	jobLister batchlisters.JobLister
	hasSynced cache.InformerSynced
	queue     *controller.Queue
	wakeups   *controller.Wakeups // per Job key: the wake-up at its expiry
	clock     clock.Clock
	log       *slog.Logger

	// synced, if set (by tests, before Run), is called after each sync of
	// a Job with the time the sync read from the clock.
	synced func(key string, now time.Time)
}

var _ controller.Controller = (*Controller)(nil)

// New returns a TTL-after-finished controller using factory's Job
// informer, whose event handlers it registers now: start factory after
// New (Run waits for the cache).
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	inf := factory.Batch().V1().Jobs()
	c := &Controller{
		client:    client,
		jobLister: inf.Lister(),
		hasSynced: inf.Informer().HasSynced,
		clock:     clk,
		log:       log.With("controller", Name),
	}
	c.queue = controller.NewQueue(Name, log, c.sync)
	c.wakeups = controller.NewWakeups(clk, c.queue)
	inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: func(obj any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.wakeups.Forget(key)
			}
		},
	})
	return c
}

// Name implements controller.Controller.
func (c *Controller) Name() string { return Name }

// Run runs workers until ctx ends; the wake-ups still armed are stopped.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer c.wakeups.Stop()
	return c.queue.Run(ctx, workers, c.hasSynced)
}

// enqueue queues a Job that is not being deleted and needs cleaning up.
func (c *Controller) enqueue(obj any) {
	if job, ok := obj.(*batchv1.Job); ok && job.DeletionTimestamp == nil && needsCleanup(job) {
		c.queue.Enqueue(job)
	}
}

// needsCleanup reports whether job has a TTL and has finished.
func needsCleanup(job *batchv1.Job) bool {
	return job.Spec.TTLSecondsAfterFinished != nil && controller.FinishedCondition(job) != nil
}

// sync deletes the Job of key if its TTL has run out, by the cache and
// then by a fresh read; otherwise arms a wake-up at its expiry.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	now := c.clock.Now()
	if c.synced != nil {
		defer c.synced(key, now)
	}
	cached, err := c.jobLister.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.wakeups.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if expired, err := c.expired(key, cached, now); err != nil || !expired {
		return err
	}
	// The cache may hold a TTL changed since: check the Job as it is now.
	fresh, err := c.client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get job %s: %w", key, err)
	}
	if expired, err := c.expired(key, fresh, now); err != nil || !expired {
		return err
	}
	err = c.client.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{
		PropagationPolicy: new(metav1.DeletePropagationForeground),
		Preconditions:     &metav1.Preconditions{UID: &fresh.UID},
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete job %s: %w", key, err)
	}
	c.log.Debug("deleted finished job", "job", key, "ttlSecondsAfterFinished", *fresh.Spec.TTLSecondsAfterFinished)
	return nil
}

// expired reports whether job's TTL has run out at now. A Job being
// deleted or not needing cleanup has none; one whose TTL has not run out
// gets a wake-up at its expiry.
func (c *Controller) expired(key string, job *batchv1.Job, now time.Time) (bool, error) {
	if job.DeletionTimestamp != nil || !needsCleanup(job) {
		return false, nil
	}
	finishedAt, err := finishTime(job)
	if err != nil {
		return false, err
	}
	if finishedAt.After(now) {
		c.log.Warn("job finished in the future (clock skew?): its cleanup waits", "job", key, "finishTime", finishedAt)
	}
	left := finishedAt.Add(time.Duration(*job.Spec.TTLSecondsAfterFinished) * time.Second).Sub(now)
	if left > 0 {
		c.wakeups.After(key, left)
		return false, nil
	}
	return true, nil
}

// finishTime is when job finished: its finished condition's
// lastTransitionTime, else its completionTime.
func finishTime(job *batchv1.Job) (time.Time, error) {
	if cond := controller.FinishedCondition(job); cond != nil && !cond.LastTransitionTime.IsZero() {
		return cond.LastTransitionTime.Time, nil
	}
	if job.Status.CompletionTime != nil {
		return job.Status.CompletionTime.Time, nil
	}
	return time.Time{}, fmt.Errorf("job %s/%s: no time it finished", job.Namespace, job.Name)
}
