package scheduler

import (
	"container/heap"
	"maps"
	"reflect"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

// Kube-scheduler's podInitialBackoffSeconds and podMaxBackoffSeconds.
const (
	DefaultInitialBackoff = 1 * time.Second
	DefaultMaxBackoff     = 10 * time.Second
)

// backoff is initial doubled per attempt after the first, capped at max
// (kube's calculateBackoffDuration).
func backoff(attempts int, initial, maxBackoff time.Duration) time.Duration {
	d := initial
	for i := 1; i < attempts; i++ {
		d *= 2
		if d >= maxBackoff {
			return maxBackoff
		}
	}
	return min(d, maxBackoff)
}

type entryState int

const (
	stateActive   entryState = iota // in the active heap
	stateWaiting                    // failed; waits for readyAt
	stateInFlight                   // popped; being scheduled or bound
)

type queueEntry struct {
	key         string
	pod         *corev1.Pod
	state       entryState
	priority    int32
	seq         uint64 // FIFO order among equal priorities
	heapIdx     int
	attempts    int
	lastAttempt time.Time
	readyAt     time.Time
	moveSeq     uint64 // queue's moveSeq when popped
	updated     bool   // the pod changed while in flight
	deleted     bool   // the pod was deleted while in flight
}

// schedulingQueue holds the pods waiting to be scheduled, by
// namespace/name key:
//   - active: ready now, popped by priority (higher first), then FIFO;
//   - waiting: failed attempts, back in active at readyAt = last attempt +
//     backoff(attempts) (1 s doubling to 10 s). A cluster change that may
//     make them fit (MoveAll: a node added or changed, a pod removed) brings
//     that forward to last attempt + initial back-off;
//   - in flight: popped, until Done (bound, or gone) or Requeue (failed).
//
// A pod is in at most one of them. Safe for concurrent use.
type schedulingQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	closed  bool
	entries map[string]*queueEntry
	active  activeHeap
	seq     uint64
	moveSeq uint64

	initial, max time.Duration
	now          func() time.Time
}

func newSchedulingQueue(initial, maxBackoff time.Duration, now func() time.Time) *schedulingQueue {
	if now == nil {
		now = time.Now
	}
	q := &schedulingQueue{entries: map[string]*queueEntry{}, initial: initial, max: maxBackoff, now: now}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func podKey(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }

// Add queues a new unscheduled pod, or takes a newer version of a queued
// one. A waiting pod whose spec, labels or annotations changed becomes
// active at once (the change may make it fit); a status-only change (such
// as our own PodScheduled condition) changes nothing.
func (q *schedulingQueue) Add(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	key := podKey(pod)
	e := q.entries[key]
	if e == nil {
		e = &queueEntry{key: key, pod: pod}
		q.entries[key] = e
		q.pushActive(e)
		return
	}
	old := e.pod
	e.pod = pod
	changed := old.UID != pod.UID || podSchedulingChanged(old, pod)
	switch e.state {
	case stateWaiting:
		if changed {
			q.pushActive(e)
		}
	case stateInFlight:
		if changed {
			e.updated = true
		}
	}
}

// podSchedulingChanged reports a change that may alter the decision.
func podSchedulingChanged(old, cur *corev1.Pod) bool {
	return !maps.Equal(old.Labels, cur.Labels) || !maps.Equal(old.Annotations, cur.Annotations) ||
		!reflect.DeepEqual(old.Spec, cur.Spec)
}

// Delete drops key (the pod is gone, bound elsewhere or finished).
func (q *schedulingQueue) Delete(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.entries[key]
	if e == nil {
		return
	}
	switch e.state {
	case stateInFlight:
		e.deleted = true
	case stateActive:
		heap.Remove(&q.active, e.heapIdx)
		delete(q.entries, key)
	default:
		delete(q.entries, key)
	}
}

// Pop blocks until a pod is active and returns it, now in flight; it
// returns nil once the queue is closed.
func (q *schedulingQueue) Pop() *corev1.Pod {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.active.Len() == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil
	}
	e := heap.Pop(&q.active).(*queueEntry)
	e.state = stateInFlight
	e.moveSeq = q.moveSeq
	e.updated = false
	return e.pod
}

// Done ends key's flight: it was bound, or is not to be scheduled.
func (q *schedulingQueue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.entries[key]; e != nil && e.state == stateInFlight {
		delete(q.entries, key)
	}
}

// Requeue puts an in-flight pod whose attempt failed back to wait for its
// back-off. If the cluster changed (MoveAll) or the pod did while it was in
// flight, it waits only the initial back-off, as the change may be what it
// needed. It returns the back-off the pod waits, or 0 when key was deleted
// meanwhile (and is now dropped).
func (q *schedulingQueue) Requeue(key string) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.entries[key]
	if e == nil || e.state != stateInFlight {
		return 0
	}
	if e.deleted || q.closed {
		delete(q.entries, key)
		return 0
	}
	e.attempts++
	e.lastAttempt = q.now()
	d := backoff(e.attempts, q.initial, q.max)
	if e.updated || e.moveSeq != q.moveSeq {
		d = q.initial
	}
	e.readyAt = e.lastAttempt.Add(d)
	e.state = stateWaiting
	return d
}

// Hold puts an in-flight pod back to wait without counting an attempt: it
// waits for Activate, or at most d (the loop holds container pods while
// their images' architectures are first looked up). A pod that changed
// while in flight becomes active at once; one deleted meanwhile is dropped.
func (q *schedulingQueue) Hold(key string, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.entries[key]
	if e == nil || e.state != stateInFlight {
		return
	}
	if e.deleted || q.closed {
		delete(q.entries, key)
		return
	}
	e.lastAttempt = q.now()
	e.readyAt = e.lastAttempt.Add(d)
	e.state = stateWaiting
	if e.updated {
		q.pushActive(e)
	}
}

// Activate makes a waiting or in-flight-then-requeued pod active now (used
// when our own status write lost a race and must be redone, and when a
// held pod's image lookups ended).
func (q *schedulingQueue) Activate(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.entries[key]; e != nil && e.state == stateWaiting {
		q.pushActive(e)
	}
}

// MoveAll records a cluster change that may make waiting pods fit: each
// waits at most the initial back-off from its last attempt.
func (q *schedulingQueue) MoveAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moveSeq++
	now := q.now()
	for _, e := range q.entries {
		if e.state != stateWaiting {
			continue
		}
		if soon := e.lastAttempt.Add(q.initial); soon.Before(e.readyAt) {
			e.readyAt = soon
		}
		if !e.readyAt.After(now) {
			q.pushActive(e)
		}
	}
}

// Flush makes every waiting pod whose readyAt has come active.
func (q *schedulingQueue) Flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for _, e := range q.entries {
		if e.state == stateWaiting && !e.readyAt.After(now) {
			q.pushActive(e)
		}
	}
}

// Close wakes Pop for good.
func (q *schedulingQueue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

// Counts returns how many pods are active, waiting and in flight.
func (q *schedulingQueue) Counts() (active, waiting, inFlight int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range q.entries {
		switch e.state {
		case stateActive:
			active++
		case stateWaiting:
			waiting++
		default:
			inFlight++
		}
	}
	return
}

// pushActive moves e into the active heap; q.mu held.
func (q *schedulingQueue) pushActive(e *queueEntry) {
	q.seq++
	e.seq = q.seq
	e.state = stateActive
	e.priority = corev1helpers.PodPriority(e.pod)
	heap.Push(&q.active, e)
	q.cond.Signal()
}

// activeHeap orders entries by priority (higher first), then seq.
type activeHeap []*queueEntry

func (h activeHeap) Len() int { return len(h) }
func (h activeHeap) Less(i, j int) bool {
	if h[i].priority != h[j].priority {
		return h[i].priority > h[j].priority
	}
	return h[i].seq < h[j].seq
}
func (h activeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *activeHeap) Push(x any) {
	e := x.(*queueEntry)
	e.heapIdx = len(*h)
	*h = append(*h, e)
}
func (h *activeHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	e.heapIdx = -1
	return e
}
