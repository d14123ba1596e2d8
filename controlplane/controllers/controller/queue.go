package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// Controller is what the controller manager runs. Run blocks until ctx ends
// and returns only after every worker has stopped.
type Controller interface {
	Name() string
	Run(ctx context.Context, workers int) error
}

// Queue is a rate-limited workqueue of namespace/name keys whose workers
// call one sync function. A key whose sync fails is retried with per-key
// exponential back-off (5 ms doubling to 1000 s, and an overall 10 qps
// bucket, as client-go's default controller rate limiter); a key that
// syncs cleanly is forgotten. Safe for concurrent use.
type Queue struct {
	name string
	q    workqueue.TypedRateLimitingInterface[string]
	sync func(ctx context.Context, key string) error
	log  *slog.Logger
}

// NewQueue returns a queue named name (used in logs) calling sync per key.
func NewQueue(name string, log *slog.Logger, sync func(ctx context.Context, key string) error) *Queue {
	if log == nil {
		log = slog.Default()
	}
	return &Queue{
		name: name,
		q: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name}),
		sync: sync,
		log:  log.With("controller", name),
	}
}

// Add queues key now.
func (q *Queue) Add(key string) { q.q.Add(key) }

// AddAfter queues key after d.
func (q *Queue) AddAfter(key string, d time.Duration) { q.q.AddAfter(key, d) }

// Enqueue queues the key of an informer object (also of a
// cache.DeletedFinalStateUnknown tombstone).
func (q *Queue) Enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		q.log.Warn("no key for object", "err", err)
		return
	}
	q.q.Add(key)
}

// Len is the number of keys waiting.
func (q *Queue) Len() int { return q.q.Len() }

// Run waits for the caches to sync, then runs workers until ctx ends, shuts
// the queue down and waits for the workers.
func (q *Queue) Run(ctx context.Context, workers int, synced ...cache.InformerSynced) error {
	defer q.q.ShutDown()
	if !cache.WaitForNamedCacheSync(q.name, ctx.Done(), synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", q.name, context.Cause(ctx))
	}
	if workers < 1 {
		workers = 1
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for q.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	q.q.ShutDown()
	wg.Wait()
	return nil
}

func (q *Queue) next(ctx context.Context) bool {
	key, quit := q.q.Get()
	if quit {
		return false
	}
	defer q.q.Done(key)
	if err := q.sync(ctx, key); err != nil {
		if ctx.Err() != nil {
			return false
		}
		q.log.Debug("sync failed, retrying", "key", key, "err", err)
		q.q.AddRateLimited(key)
		return true
	}
	q.q.Forget(key)
	return true
}

// RecordEvents sends the events of b to the API through client until the
// returned stop is called (when the controller's Run ends).
func RecordEvents(b record.EventBroadcaster, client kubernetes.Interface) (stop func()) {
	w := b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return func() {
		w.Stop()
		b.Shutdown()
	}
}
