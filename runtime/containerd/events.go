package containerd

import (
	"context"
	"sync"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/typeurl/v2"
)

// Event topics the watcher follows. syncTopic is this package's own: the
// watcher publishes one event on it to learn that its subscription is live.
const (
	topicOOM  = "/tasks/oom"
	topicExit = "/tasks/exit"
	syncTopic = "/wasmfleet/sync"
)

// eventWatcher follows containerd's task events for the containers this
// Runtime watches: it records OOM kills and the exits of their init
// processes. containerd forwards one shim's events in order, so a task's OOM
// event arrives before its exit event.
type eventWatcher struct {
	client *containerd.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	cs   map[string]*watched // by containerd container ID
	sync map[string]chan struct{}
}

type watched struct {
	oom    bool
	exited chan struct{}
}

// startEventWatcher subscribes to the task events of ctx's namespace and
// returns once the subscription is live (or after a bounded wait).
func startEventWatcher(ctx context.Context, client *containerd.Client) *eventWatcher {
	ctx, cancel := context.WithCancel(ctx)
	w := &eventWatcher{
		client: client,
		cancel: cancel,
		done:   make(chan struct{}),
		cs:     map[string]*watched{},
		sync:   map[string]chan struct{}{},
	}
	live := make(chan struct{}, 1)
	go w.run(ctx, live)
	select {
	case <-live:
	case <-time.After(5 * time.Second):
	}
	return w
}

// run subscribes, and subscribes again after the stream breaks, until
// stopped. live receives a value each time a subscription is known live.
func (w *eventWatcher) run(ctx context.Context, live chan<- struct{}) {
	defer close(w.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		ch, errs := w.client.Subscribe(sctx,
			`topic=="`+topicOOM+`"`, `topic=="`+topicExit+`"`, `topic=="`+syncTopic+`"`)
		synced := w.publishSync(sctx)
		received := false
	stream:
		for {
			select {
			case env := <-ch:
				received = true
				w.handle(env.Topic, env.Event)
			case <-synced:
				synced = nil
				select {
				case live <- struct{}{}:
				default:
				}
			case <-errs:
				break stream
			case <-ctx.Done():
				break stream
			}
		}
		cancel()
		if received {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// publishSync publishes an event on syncTopic and returns a channel closed
// when the subscription delivers it.
func (w *eventWatcher) publishSync(ctx context.Context) <-chan struct{} {
	token := "sync-" + randomHex()
	ch := make(chan struct{})
	w.mu.Lock()
	w.sync[token] = ch
	w.mu.Unlock()
	go func() {
		// Retry: the first publish may precede the subscription.
		for i := 0; i < 50; i++ {
			_ = w.client.EventService().Publish(ctx, syncTopic, &apievents.TaskOOM{ContainerID: token})
			select {
			case <-ch:
				return
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return ch
}

func (w *eventWatcher) handle(topic string, event typeurl.Any) {
	if event == nil {
		return
	}
	v, err := typeurl.UnmarshalAny(event)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch e := v.(type) {
	case *apievents.TaskOOM:
		if topic == syncTopic {
			if ch, ok := w.sync[e.ContainerID]; ok {
				close(ch)
				delete(w.sync, e.ContainerID)
			}
			return
		}
		if c, ok := w.cs[e.ContainerID]; ok {
			c.oom = true
		}
	case *apievents.TaskExit:
		// The init process's exec ID is the container ID.
		if c, ok := w.cs[e.ContainerID]; ok && (e.ID == "" || e.ID == e.ContainerID) {
			select {
			case <-c.exited:
			default:
				close(c.exited)
			}
		}
	}
}

// watch starts recording the events of container id; call it before its
// task starts.
func (w *eventWatcher) watch(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cs[id] = &watched{exited: make(chan struct{})}
}

// forget stops recording the events of container id.
func (w *eventWatcher) forget(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.cs, id)
}

// awaitExit waits up to timeout for the exit event of container id's init
// process and reports whether an OOM event came for it.
func (w *eventWatcher) awaitExit(id string, timeout time.Duration) (oom bool) {
	w.mu.Lock()
	c, ok := w.cs[id]
	w.mu.Unlock()
	if !ok {
		return false
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
	case <-w.done:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return c.oom
}

// stop ends the subscription and waits for its goroutine.
func (w *eventWatcher) stop() {
	w.cancel()
	<-w.done
}
