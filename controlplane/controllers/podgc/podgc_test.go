package podgc

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

const ns = "default"

// clock is the collector's time, moved by the test.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// quarantineTime is the tests' quarantine: longer than any test, so only
// the test's clock ends it.
const quarantineTime = time.Hour

// startCollector runs a collector (a collection every 50 ms, the test's
// clock) on a new control plane until the test ends, and waits for its
// first collection.
func startCollector(t *testing.T, threshold int) (kubernetes.Interface, *Controller, *clock) {
	t.Helper()
	cs := testcluster.Start(t).Client(t)
	factory := informers.NewSharedInformerFactory(cs, 0)
	c := New(cs, factory, Options{TerminatedPodGCThreshold: threshold, GCCheckPeriod: 50 * time.Millisecond, QuarantineTime: quarantineTime},
		slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if c.Name() != Name {
		t.Fatalf("Name() = %q", c.Name())
	}
	clk := &clock{}
	c.now = clk.now
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, 1) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		factory.Shutdown()
	})
	waitPasses(t, c, 1)
	return cs, c, clk
}

func createNode(t *testing.T, cs kubernetes.Interface, name string, ready corev1.ConditionStatus, taints ...corev1.Taint) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{Taints: taints}}
	n, err := cs.CoreV1().Nodes().Create(t.Context(), n, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, Reason: "Test", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(t.Context(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createPod creates a pod on node ("": unbound) with finalizers and sets
// its phase (as the node agent would); Running pods are Ready.
func createPod(t *testing.T, cs kubernetes.Interface, name, node string, phase corev1.PodPhase, finalizers ...string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Finalizers: finalizers},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}},
	}
	p, err := cs.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if phase == corev1.PodPending {
		return p
	}
	p.Status.Phase = phase
	if phase == corev1.PodRunning {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	if p, err = cs.CoreV1().Pods(ns).UpdateStatus(t.Context(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return p
}

func getPod(t *testing.T, cs kubernetes.Interface, name string) (*corev1.Pod, bool) {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return p, true
}

func waitGone(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	testenv.Poll(t, "pod "+name+" gone", func() (bool, string) {
		p, ok := getPod(t, cs, name)
		if !ok {
			return true, ""
		}
		return false, fmt.Sprintf("phase %s, deletionTimestamp %v", p.Status.Phase, p.DeletionTimestamp)
	})
}

// waitPasses waits until the collector has finished n more collections
// than it had when called.
func waitPasses(t *testing.T, c *Controller, n int64) {
	t.Helper()
	want := c.passes.Load() + n
	testenv.Poll(t, "collections", func() (bool, string) {
		got := c.passes.Load()
		return got >= want, fmt.Sprintf("%d of %d", got, want)
	})
}

// waitQuarantined waits until the collector has quarantined node.
func waitQuarantined(t *testing.T, c *Controller, node string) {
	t.Helper()
	testenv.Poll(t, "node "+node+" quarantined", func() (bool, string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.q[node]
		return ok, fmt.Sprintf("quarantine %v", c.q)
	})
}

// untouched fails the test if the pod is gone, being deleted or no longer
// in phase (or is another pod than p).
func untouched(t *testing.T, cs kubernetes.Interface, p *corev1.Pod, phase corev1.PodPhase) {
	t.Helper()
	got, ok := getPod(t, cs, p.Name)
	if !ok {
		t.Errorf("pod %s was deleted", p.Name)
		return
	}
	if got.UID != p.UID || got.DeletionTimestamp != nil || got.Status.Phase != phase {
		t.Errorf("pod %s: uid %s (want %s), deletionTimestamp %v, phase %s (want %s)", p.Name, got.UID, p.UID, got.DeletionTimestamp, got.Status.Phase, phase)
	}
}

func disruptionTarget(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.DisruptionTarget {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// TestDeletedNode: the pods of a deleted node are marked Failed with the
// DisruptionTarget condition and then force-deleted once its quarantine
// ended; a node that comes back within its quarantine keeps its pods.
func TestDeletedNode(t *testing.T) {
	cs, c, clk := startCollector(t, 0)
	ctx := t.Context()
	for _, n := range []string{"dev-7", "dev-8", "dev-9"} {
		createNode(t, cs, n, corev1.ConditionTrue)
	}
	// A finalizer keeps running so that the marks can be read before
	// it goes.
	const keep = "test.wasmfleet.io/keep"
	running := createPod(t, cs, "running", "dev-7", corev1.PodRunning, keep)
	done := createPod(t, cs, "done", "dev-7", corev1.PodSucceeded)
	evicted := createPod(t, cs, "evicted", "dev-7", corev1.PodRunning)
	back := createPod(t, cs, "back", "dev-8", corev1.PodRunning)
	other := createPod(t, cs, "other", "dev-9", corev1.PodRunning)
	// Evicted as the node lifecycle controller evicts pods from an
	// unreachable node: a graceful deletion only its agent would finish.
	if err := cs.CoreV1().Pods(ns).Delete(ctx, evicted.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, n := range []string{"dev-7", "dev-8"} {
		if err := cs.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitQuarantined(t, c, "dev-7")
	waitQuarantined(t, c, "dev-8")
	createNode(t, cs, "dev-8", corev1.ConditionTrue)
	// Within the quarantine nothing happens.
	waitPasses(t, c, 3)
	untouched(t, cs, running, corev1.PodRunning)
	untouched(t, cs, done, corev1.PodSucceeded)
	if p, ok := getPod(t, cs, evicted.Name); !ok || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds == 0 {
		t.Errorf("evicted: %+v", p)
	}

	clk.advance(quarantineTime)
	var got *corev1.Pod
	testenv.Poll(t, "running marked and deleted", func() (bool, string) {
		var ok bool
		got, ok = getPod(t, cs, "running")
		if !ok {
			t.Fatal("running is gone despite its finalizer")
		}
		return got.DeletionTimestamp != nil, fmt.Sprintf("phase %s, deletionTimestamp %v", got.Status.Phase, got.DeletionTimestamp)
	})
	if got.UID != running.UID || got.Status.Phase != corev1.PodFailed {
		t.Errorf("running: uid %s (want %s), phase %s, want Failed", got.UID, running.UID, got.Status.Phase)
	}
	if g := got.DeletionGracePeriodSeconds; g == nil || *g != 0 {
		t.Errorf("running: deletionGracePeriodSeconds %v, want 0 (force)", g)
	}
	cond := disruptionTarget(got)
	if cond == nil || cond.Status != corev1.ConditionTrue || cond.Reason != "DeletionByPodGC" || cond.Message != "PodGC: node no longer exists" {
		t.Errorf("running: DisruptionTarget %+v", cond)
	}
	if r := got.Status.Conditions[0]; r.Type != corev1.PodReady || r.Status != corev1.ConditionTrue {
		t.Errorf("running: other conditions changed: %+v", got.Status.Conditions)
	}
	// A finished pod is deleted as it is; the evicted one's grace period
	// is cut to 0.
	waitGone(t, cs, "done")
	waitGone(t, cs, "evicted")

	// Only its finalizer keeps running now: the collector does not delete
	// it again (no new resourceVersion) and it goes once the finalizer does.
	waitPasses(t, c, 3)
	if again, _ := getPod(t, cs, "running"); again == nil || again.ResourceVersion != got.ResourceVersion {
		t.Errorf("running changed while only its finalizer kept it: %+v", again)
	}
	got.Finalizers = nil
	if _, err := cs.CoreV1().Pods(ns).Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, cs, "running")

	// dev-8 came back within its quarantine: its pod stays, as other's.
	waitPasses(t, c, 2)
	untouched(t, cs, back, corev1.PodRunning)
	untouched(t, cs, other, corev1.PodRunning)
}

// TestNodeMissingFromInformerOnly: a pod bound to a node the informer has
// not seen yet is not collected when the API has the node.
func TestNodeMissingFromInformerOnly(t *testing.T) {
	cs, c, clk := startCollector(t, 0)
	p := createPod(t, cs, "early", "dev-1", corev1.PodRunning)
	waitQuarantined(t, c, "dev-1")
	// Created while quarantined, it is in the API (and soon the informer).
	createNode(t, cs, "dev-1", corev1.ConditionTrue)
	clk.advance(quarantineTime)
	testenv.Poll(t, "quarantine over", func() (bool, string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.q) == 0, fmt.Sprintf("%v", c.q)
	})
	waitPasses(t, c, 2)
	untouched(t, cs, p, corev1.PodRunning)
}

// TestUnboundTerminatingPod: a pod being deleted that was never bound is
// force-deleted (here a finalizer held it, then it is removed).
func TestUnboundTerminatingPod(t *testing.T) {
	cs, c, _ := startCollector(t, 0)
	ctx := t.Context()
	const keep = "test.wasmfleet.io/keep"
	p := createPod(t, cs, "unbound", "", corev1.PodPending, keep)
	pending := createPod(t, cs, "pending", "", corev1.PodPending)
	if err := cs.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	testenv.Poll(t, "unbound marked failed", func() (bool, string) {
		got, _ = getPod(t, cs, "unbound")
		return got != nil && got.Status.Phase == corev1.PodFailed, fmt.Sprintf("%+v", got)
	})
	if disruptionTarget(got) != nil {
		t.Errorf("unbound got a DisruptionTarget condition: %+v", got.Status.Conditions)
	}
	got.Finalizers = nil
	if _, err := cs.CoreV1().Pods(ns).Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, cs, "unbound")
	waitPasses(t, c, 2)
	untouched(t, cs, pending, corev1.PodPending)
}

// TestTerminatedThreshold: finished pods beyond the threshold go, oldest
// first; the newest stay, as do running pods.
func TestTerminatedThreshold(t *testing.T) {
	cs, c, _ := startCollector(t, 3)
	createNode(t, cs, "dev-1", corev1.ConditionTrue)
	// creationTimestamp has a resolution of seconds: the names order pods
	// created in the same one, as the collector does.
	var finished []*corev1.Pod
	for i := range 6 {
		phase := corev1.PodSucceeded
		if i%2 == 1 {
			phase = corev1.PodFailed
		}
		finished = append(finished, createPod(t, cs, fmt.Sprintf("done-%d", i), "dev-1", phase))
	}
	running := createPod(t, cs, "running", "dev-1", corev1.PodRunning)
	for _, p := range finished[:3] {
		waitGone(t, cs, p.Name)
	}
	waitPasses(t, c, 2)
	for _, p := range finished[3:] {
		untouched(t, cs, p, p.Status.Phase)
	}
	untouched(t, cs, running, corev1.PodRunning)
}

// TestOutOfService: pods being deleted on a node that is not Ready and is
// tainted out-of-service are marked Failed and force-deleted; pods being
// deleted on a node only not Ready wait for their agent.
func TestOutOfService(t *testing.T) {
	cs, c, _ := startCollector(t, 0)
	ctx := t.Context()
	createNode(t, cs, "dead", corev1.ConditionFalse, corev1.Taint{Key: corev1.TaintNodeOutOfService, Value: "nodeshutdown", Effect: corev1.TaintEffectNoExecute})
	createNode(t, cs, "slow", corev1.ConditionFalse)
	const keep = "test.wasmfleet.io/keep"
	stuck := createPod(t, cs, "stuck", "dead", corev1.PodRunning, keep)
	alive := createPod(t, cs, "alive", "dead", corev1.PodRunning)
	waiting := createPod(t, cs, "waiting", "slow", corev1.PodRunning)
	for _, name := range []string{"stuck", "waiting"} {
		if err := cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var got *corev1.Pod
	testenv.Poll(t, "stuck force-deleted", func() (bool, string) {
		got, _ = getPod(t, cs, "stuck")
		return got != nil && got.DeletionGracePeriodSeconds != nil && *got.DeletionGracePeriodSeconds == 0, fmt.Sprintf("%+v", got)
	})
	if got.UID != stuck.UID || got.Status.Phase != corev1.PodFailed {
		t.Errorf("stuck: uid %s (want %s), phase %s, want Failed", got.UID, stuck.UID, got.Status.Phase)
	}
	if cond := disruptionTarget(got); cond != nil {
		t.Errorf("stuck: DisruptionTarget %+v (Kubernetes sets none on this path)", cond)
	}
	got.Finalizers = nil
	if _, err := cs.CoreV1().Pods(ns).Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, cs, "stuck")
	waitPasses(t, c, 2)
	// Not being deleted: out of service or not, it stays.
	untouched(t, cs, alive, corev1.PodRunning)
	w, ok := getPod(t, cs, "waiting")
	if !ok || w.UID != waiting.UID || w.Status.Phase != corev1.PodRunning || w.DeletionGracePeriodSeconds == nil || *w.DeletionGracePeriodSeconds == 0 {
		t.Errorf("waiting: %+v", w)
	}
}

// TestRecreatedPodIsSpared: a pod the collector decided to delete that was
// replaced by another of the same name (a new UID) in the meantime is left
// alone: the status patch and the deletion both name the old UID.
func TestRecreatedPodIsSpared(t *testing.T) {
	cs, c, _ := startCollector(t, 0)
	ctx := t.Context()
	createNode(t, cs, "dev-1", corev1.ConditionTrue)
	cond := &corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: reasonDeletionByPodGC, Message: messageNodeGone}
	for _, phase := range []corev1.PodPhase{corev1.PodRunning, corev1.PodSucceeded} {
		name := "same-" + strings.ToLower(string(phase))
		stale := createPod(t, cs, name, "dev-1", phase)
		if err := cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
			t.Fatal(err)
		}
		waitGone(t, cs, name)
		fresh := createPod(t, cs, name, "dev-1", phase)
		if fresh.UID == stale.UID {
			t.Fatal("the same uid twice")
		}
		if err := c.markFailedAndDelete(ctx, stale, cond); !apierrors.IsConflict(err) {
			t.Errorf("%s: deleting the stale pod: %v, want a Conflict", name, err)
		}
		untouched(t, cs, fresh, phase)
		if got, _ := getPod(t, cs, name); got != nil && disruptionTarget(got) != nil {
			t.Errorf("%s: the new pod was marked: %+v", name, got.Status.Conditions)
		}
	}
	// The pod of that UID itself is collected.
	p, _ := getPod(t, cs, "same-running")
	if err := c.markFailedAndDelete(ctx, p, cond); err != nil {
		t.Fatal(err)
	}
	waitGone(t, cs, "same-running")
}
