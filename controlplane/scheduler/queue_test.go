package scheduler

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time       { return c.t }
func (c *fakeClock) step(d time.Duration) { c.t = c.t.Add(d) }
func newTestQueue() (*schedulingQueue, *fakeClock) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	return newSchedulingQueue(time.Second, 10*time.Second, c.now), c
}

func withPriority(p int32) func(*corev1.Pod) { return func(pod *corev1.Pod) { pod.Spec.Priority = &p } }

func popName(t *testing.T, q *schedulingQueue) string {
	t.Helper()
	if a, _, _ := q.Counts(); a == 0 {
		t.Fatal("nothing active")
	}
	return q.Pop().Name
}

func TestQueueOrder(t *testing.T) {
	q, _ := newTestQueue()
	q.Add(makePod("low1"))
	q.Add(makePod("high", withPriority(100)))
	q.Add(makePod("low2"))
	q.Add(makePod("low1")) // again: no duplicate
	for _, want := range []string{"high", "low1", "low2"} {
		if got := popName(t, q); got != want {
			t.Fatalf("popped %s, want %s", got, want)
		}
	}
	if a, w, f := q.Counts(); a != 0 || w != 0 || f != 3 {
		t.Fatalf("counts = %d %d %d", a, w, f)
	}
}

func TestQueueBackoff(t *testing.T) {
	q, clock := newTestQueue()
	q.Add(makePod("p"))
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		popName(t, q)
		if got := q.Requeue("default/p"); got != want {
			t.Fatalf("attempt %d: back-off %v, want %v", i+1, got, want)
		}
		clock.step(want - time.Millisecond)
		q.Flush()
		if a, w, _ := q.Counts(); a != 0 || w != 1 {
			t.Fatalf("attempt %d: active before the back-off ended", i+1)
		}
		clock.step(time.Millisecond)
		q.Flush()
		if a, _, _ := q.Counts(); a != 1 {
			t.Fatalf("attempt %d: not active after the back-off", i+1)
		}
	}
}

func TestQueueMoveAll(t *testing.T) {
	q, clock := newTestQueue()
	q.Add(makePod("p"))
	for range 4 { // back-off now 8 s
		popName(t, q)
		q.Requeue("default/p")
		clock.step(10 * time.Second)
		q.Flush()
	}
	popName(t, q)
	if got := q.Requeue("default/p"); got != 10*time.Second {
		t.Fatalf("back-off %v", got)
	}
	// A cluster change brings the retry forward to the initial back-off...
	clock.step(500 * time.Millisecond)
	q.MoveAll()
	if a, _, _ := q.Counts(); a != 0 {
		t.Fatal("moved before the initial back-off passed")
	}
	clock.step(500 * time.Millisecond)
	q.Flush()
	if a, _, _ := q.Counts(); a != 1 {
		t.Fatal("not retried 1 s after the change")
	}
	// ...and a change while the pod is in flight makes its next wait short.
	popName(t, q)
	q.MoveAll()
	if got := q.Requeue("default/p"); got != time.Second {
		t.Fatalf("back-off after an in-flight change = %v, want 1s", got)
	}
	// A change long after the last attempt activates at once.
	clock.step(2 * time.Second)
	q.MoveAll()
	if a, _, _ := q.Counts(); a != 1 {
		t.Fatal("MoveAll after the initial back-off did not activate")
	}
}

func TestQueueUpdates(t *testing.T) {
	q, _ := newTestQueue()
	p := makePod("p")
	q.Add(p)
	popName(t, q)
	q.Requeue("default/p")

	// Status-only updates (our own condition) leave it waiting.
	st := p.DeepCopy()
	st.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse}}
	st.ResourceVersion = "7"
	q.Add(st)
	if a, w, _ := q.Counts(); a != 0 || w != 1 {
		t.Fatal("a status update activated the pod")
	}
	// A spec or label change activates it.
	lab := st.DeepCopy()
	lab.Labels = map[string]string{"x": "y"}
	q.Add(lab)
	if a, _, _ := q.Counts(); a != 1 {
		t.Fatal("a label change did not activate the pod")
	}
	if got := q.Pop(); got.Labels["x"] != "y" {
		t.Fatal("Pop returned an old version")
	}
	// Changed in flight: short back-off.
	tol := lab.DeepCopy()
	tol.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	q.Add(tol)
	if a, _, f := q.Counts(); a != 0 || f != 1 {
		t.Fatal("an in-flight pod was queued twice")
	}
	if got := q.Requeue("default/p"); got != time.Second {
		t.Fatalf("back-off = %v", got)
	}
}

func TestQueueDelete(t *testing.T) {
	q, _ := newTestQueue()
	q.Add(makePod("flying"))
	q.Add(makePod("waiting"))
	popName(t, q)
	popName(t, q)
	q.Requeue("default/waiting")
	q.Add(makePod("active"))
	q.Delete("default/active")
	q.Delete("default/waiting")
	q.Delete("default/flying")
	if a, w, f := q.Counts(); a != 0 || w != 0 || f != 1 {
		t.Fatalf("counts = %d %d %d", a, w, f)
	}
	if got := q.Requeue("default/flying"); got != 0 {
		t.Fatal("a pod deleted in flight was requeued")
	}
	if a, w, f := q.Counts(); a+w+f != 0 {
		t.Fatal("queue not empty")
	}
	q.Add(makePod("p"))
	popName(t, q)
	q.Done("default/p")
	if a, w, f := q.Counts(); a+w+f != 0 {
		t.Fatal("Done left the pod")
	}
}

// TestQueueHold: a held pod waits for Activate (or at most its bound)
// without counting an attempt.
func TestQueueHold(t *testing.T) {
	q, clock := newTestQueue()
	q.Add(makePod("p"))
	popName(t, q)
	q.Hold("default/p", 10*time.Second)
	if a, w, _ := q.Counts(); a != 0 || w != 1 {
		t.Fatalf("held pod: active %d, waiting %d", a, w)
	}
	q.Activate("default/p")
	popName(t, q)
	// Holding counted no attempt: the first failure waits the initial
	// back-off.
	if got := q.Requeue("default/p"); got != time.Second {
		t.Fatalf("back-off after a hold = %v, want 1s", got)
	}
	clock.step(time.Second)
	q.Flush()
	popName(t, q)

	// Without Activate the hold ends at its bound.
	q.Hold("default/p", 10*time.Second)
	clock.step(10*time.Second - time.Millisecond)
	q.Flush()
	if a, _, _ := q.Counts(); a != 0 {
		t.Fatal("active before the hold's bound")
	}
	clock.step(time.Millisecond)
	q.Flush()
	popName(t, q)

	// Changed in flight: active at once, the change may be its images.
	changed := makePod("p")
	changed.Spec.Containers[0].Image = "app:2"
	q.Add(changed)
	q.Hold("default/p", 10*time.Second)
	if got := popName(t, q); got != "p" {
		t.Fatalf("popped %s", got)
	}
	// Deleted in flight: dropped.
	q.Delete("default/p")
	q.Hold("default/p", 10*time.Second)
	if a, w, f := q.Counts(); a+w+f != 0 {
		t.Fatalf("a pod deleted in flight was held: %d %d %d", a, w, f)
	}
}

func TestQueueClose(t *testing.T) {
	q, _ := newTestQueue()
	done := make(chan *corev1.Pod)
	go func() { done <- q.Pop() }()
	q.Close()
	if p := <-done; p != nil {
		t.Fatalf("Pop after Close = %v", p)
	}
}
