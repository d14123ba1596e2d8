package nodelifecycle

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// eventually polls cond every 50 ms for up to a minute.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error: %v)", what, last)
}

// simNode is a node agent reduced to its heartbeats: a Node it posts Ready
// and a Lease it renews while alive.
type simNode struct {
	t      *testing.T
	client kubernetes.Interface
	name   string
	mu     sync.Mutex
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

func newSimNode(t *testing.T, client kubernetes.Interface, name string) *simNode {
	ctx := context.Background()
	now := metav1.Now()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "ready", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
		}},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secs := int32(2)
	renew := metav1.NewMicroTime(time.Now())
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &name, LeaseDurationSeconds: &secs, RenewTime: &renew},
	}
	if _, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, l, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := &simNode{t: t, client: client, name: name}
	s.start()
	t.Cleanup(s.halt)
	return s
}

// start renews the lease every 200 ms (and posts Ready, as an agent does
// when it gets through again).
func (s *simNode) start() {
	s.postReady()
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.stop = cancel
	s.mu.Unlock()
	s.wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			l, err := s.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, s.name, metav1.GetOptions{})
			if err == nil {
				now := metav1.NewMicroTime(time.Now())
				l.Spec.RenewTime = &now
				s.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, l, metav1.UpdateOptions{})
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
}

// halt stops renewing: the node goes silent.
func (s *simNode) halt() {
	s.mu.Lock()
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.wg.Wait()
}

func (s *simNode) postReady() {
	ctx := context.Background()
	for {
		n, err := s.client.CoreV1().Nodes().Get(ctx, s.name, metav1.GetOptions{})
		if err != nil {
			s.t.Fatal(err)
		}
		now := metav1.Now()
		for i := range n.Status.Conditions {
			c := &n.Status.Conditions[i]
			c.LastHeartbeatTime = now
			want := corev1.ConditionFalse
			if c.Type == corev1.NodeReady {
				want = corev1.ConditionTrue
			}
			if c.Status != want {
				c.Status, c.LastTransitionTime, c.Reason = want, now, "KubeletReady"
			}
		}
		_, err = s.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			s.t.Fatal(err)
		}
		return
	}
}

func startController(t *testing.T, client kubernetes.Interface, opts Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(client, 0)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := New(client, factory, opts, log)
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, 2) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		factory.Shutdown()
	})
}

func hasTaint(n *corev1.Node, key string, effect corev1.TaintEffect) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key && t.Effect == effect {
			return true
		}
	}
	return false
}

func findPodCondition(p *corev1.Pod, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == typ {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// gone reports whether a pod was deleted (gracefully: a pod on a node keeps
// a deletionTimestamp until its agent confirms).
func gone(client kubernetes.Interface, ns, name string) (bool, error) {
	p, err := client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return p.DeletionTimestamp != nil, nil
}

func TestSilentNodeIsTaintedAndItsPodsEvicted(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	ctx := context.Background()
	startController(t, client, Options{NodeMonitorGracePeriod: 2 * time.Second, NodeMonitorPeriod: 200 * time.Millisecond})
	sim := newSimNode(t, client, "edge-1")

	secs := func(s int64) *int64 { return &s }
	unreachable := func(s *int64) []corev1.Toleration {
		return []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: s}}
	}
	mkPod := func(name string, tols []corev1.Toleration) {
		t.Helper()
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: "edge-1", Tolerations: tols,
				Containers: []corev1.Container{{Name: "app", Image: "hello:1"}}},
		}
		p, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		p.Status.Phase = corev1.PodRunning
		if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkPod("default-tolerations", nil) // the apiserver adds unreachable:NoExecute for 300s
	mkPod("forever", unreachable(nil))
	mkPod("two-seconds", unreachable(secs(2)))
	mkPod("zero-seconds", unreachable(secs(0)))

	// Alive: nothing happens for a while (two grace periods).
	time.Sleep(4 * time.Second)
	n, err := client.CoreV1().Nodes().Get(ctx, "edge-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := readyCondition(n); r.Status != corev1.ConditionTrue || len(n.Spec.Taints) != 0 {
		t.Fatalf("a renewing node was touched: ready %s, taints %v", r.Status, n.Spec.Taints)
	}

	// Silent: Unknown and tainted unreachable.
	sim.halt()
	eventually(t, "node Unknown and tainted unreachable", func() (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, "edge-1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		r := readyCondition(n)
		mp := findCondition(n.Status.Conditions, corev1.NodeMemoryPressure)
		return r.Status == corev1.ConditionUnknown && r.Reason == "NodeStatusUnknown" && r.Message == "Kubelet stopped posting node status." &&
			mp.Status == corev1.ConditionUnknown &&
			hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) &&
			hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule), nil
	})
	eventually(t, "zero-seconds pod evicted", func() (bool, error) { return gone(client, "default", "zero-seconds") })
	eventually(t, "two-seconds pod evicted", func() (bool, error) { return gone(client, "default", "two-seconds") })
	// As Kubernetes' taint eviction: the pod says why it goes.
	evicted, err := client.CoreV1().Pods("default").Get(ctx, "two-seconds", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := findPodCondition(evicted, corev1.DisruptionTarget); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "DeletionByTaintManager" {
		t.Errorf("evicted pod's conditions: %+v, want DisruptionTarget=True DeletionByTaintManager", evicted.Status.Conditions)
	}
	for _, name := range []string{"forever", "default-tolerations"} {
		if g, err := gone(client, "default", name); err != nil || g {
			t.Errorf("pod %s evicted (%v), want it kept", name, err)
		}
	}
	eventually(t, "pods marked not Ready", func() (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "forever", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.Conditions[0].Status == corev1.ConditionFalse, nil
	})
	eventually(t, "eviction event", func() (bool, error) {
		evs, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=TaintManagerEviction,involvedObject.name=two-seconds"})
		return err == nil && len(evs.Items) > 0, err
	})

	// Back: the agent renews its lease and posts Ready; the taints go.
	sim.start()
	eventually(t, "taints removed", func() (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, "edge-1", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(n.Spec.Taints) == 0 && readyCondition(n).Status == corev1.ConditionTrue, nil
	})

	// A NoExecute taint of the user's (real kubectl): pods that do not
	// tolerate it go at once, whatever else they tolerate.
	testenv.MustKubectl(t, c.Kubeconfig(), filepath.Join(t.TempDir()), "", "taint", "node", "edge-1", "example.com/drain=now:NoExecute")
	for _, name := range []string{"forever", "default-tolerations"} {
		eventually(t, "pod "+name+" evicted by the user's taint", func() (bool, error) { return gone(client, "default", name) })
	}
	n, err = client.CoreV1().Nodes().Get(ctx, "edge-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasTaint(n, "example.com/drain", corev1.TaintEffectNoExecute) || readyCondition(n).Status != corev1.ConditionTrue {
		t.Errorf("the user's taint or the Ready condition changed: %+v", n.Spec.Taints)
	}
}

func TestNotReadyNodeGetsNotReadyTaints(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	ctx := context.Background()
	startController(t, client, Options{NodeMonitorGracePeriod: 2 * time.Second, NodeMonitorPeriod: 200 * time.Millisecond})
	newSimNode(t, client, "edge-2")
	n, err := client.CoreV1().Nodes().Get(ctx, "edge-2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions[0].Status = corev1.ConditionFalse
	n.Status.Conditions[0].Reason = "KubeletNotReady"
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "not-ready taints", func() (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, "edge-2", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return hasTaint(n, corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute) && hasTaint(n, corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule) &&
			!hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) && readyCondition(n).Status == corev1.ConditionFalse, nil
	})
}

// maintenance is a NoExecute taint of the user's, and tolerateMaintenance
// tolerates it for secs seconds.
const maintenance = "example.com/maintenance"

func tolerateMaintenance(secs int64) []corev1.Toleration {
	return []corev1.Toleration{{Key: maintenance, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs}}
}

// taintNode adds the maintenance taint with effect NoExecute and timeAdded
// added (as kubectl taint does, but with the time chosen) to node.
func taintNode(t *testing.T, client kubernetes.Interface, node string, added time.Time) {
	t.Helper()
	ctx := context.Background()
	for {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ts := metav1.NewTime(added)
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: maintenance, Effect: corev1.TaintEffectNoExecute, TimeAdded: &ts})
		_, err = client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
}

// createPod creates a pod with tolerations on node: through the binding
// subresource, as the scheduler places pods (bind true), or with
// spec.nodeName set at creation, as DaemonSet and mirror pods are. It
// returns the pod as created or bound.
func createPod(t *testing.T, client kubernetes.Interface, name, node string, bind bool, tols []corev1.Toleration) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Tolerations: tols,
			Containers: []corev1.Container{{Name: "app", Image: "hello:1"}}},
	}
	if !bind {
		p.Spec.NodeName = node
	}
	p, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bind {
		return p
	}
	b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: name, UID: p.UID}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}
	if err := client.CoreV1().Pods("default").Bind(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err = client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// reportScheduledAt writes the pod's PodScheduled=True condition with
// lastTransitionTime at, as a node agent whose clock is off reports a pod
// created with spec.nodeName.
func reportScheduledAt(t *testing.T, client kubernetes.Interface, p *corev1.Pod, at time.Time) {
	t.Helper()
	p = p.DeepCopy()
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)}}
	if _, err := client.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// keptUntil fails the test if one of the pods is deleted before deadline.
func keptUntil(t *testing.T, client kubernetes.Interface, deadline time.Time, names ...string) {
	t.Helper()
	for time.Now().Before(deadline) {
		for _, name := range names {
			if g, err := gone(client, "default", name); err != nil || g {
				t.Fatalf("pod %s evicted %v before it should have been (err %v)", name, time.Until(deadline), err)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// goneBy waits for the pod's eviction and fails the test if it came after
// deadline.
func goneBy(t *testing.T, client kubernetes.Interface, name string, deadline time.Time) {
	t.Helper()
	eventually(t, "pod "+name+" evicted", func() (bool, error) { return gone(client, "default", name) })
	if late := time.Since(deadline); late > 0 {
		t.Errorf("pod %s evicted %v late", name, late)
	}
}

// A pod placed on a node whose NoExecute taint is older than the pod's
// tolerationSeconds gets them in full, counted from when it came to be on
// the node, and is evicted after.
func TestPodPlacedOnTaintedNodeGetsFullToleration(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	startController(t, client, Options{NodeMonitorGracePeriod: 2 * time.Second, NodeMonitorPeriod: 200 * time.Millisecond})
	newSimNode(t, client, "edge-3")
	taintNode(t, client, "edge-3", time.Now().Add(-time.Hour))

	const tol = 4
	// Bound as the scheduler binds.
	createPod(t, client, "bound", "edge-3", true, tolerateMaintenance(tol))
	boundAt := time.Now()
	// Created on the node, reported by an agent whose clock is an hour
	// ahead: the controller's own sighting bounds it.
	direct := createPod(t, client, "direct", "edge-3", false, tolerateMaintenance(tol))
	reportScheduledAt(t, client, direct, time.Now().Add(time.Hour))
	// Not tolerating the taint: at once, which shows the controller looks.
	createPod(t, client, "intolerant", "edge-3", true, nil)
	eventually(t, "intolerant pod evicted", func() (bool, error) { return gone(client, "default", "intolerant") })

	// Timestamps have whole seconds: the binding's may be up to a second
	// before boundAt. Counted from the taint's timeAdded, both pods would
	// go at once.
	// The upper bounds leave room for a loaded machine: what they tell
	// apart (an agent clock an hour ahead) is far later.
	keptUntil(t, client, boundAt.Add((tol-1)*time.Second-200*time.Millisecond), "bound", "direct")
	goneBy(t, client, "bound", boundAt.Add((tol+8)*time.Second))
	goneBy(t, client, "direct", direct.CreationTimestamp.Add((tol+8)*time.Second))
}

// The clock of a pod placed on a tainted node is the pod's: a controller
// started after the binding (or restarted) does not start it anew.
func TestTolerationCountsFromBindingAcrossControllerStart(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	newSimNode(t, client, "edge-4")
	taintNode(t, client, "edge-4", time.Now().Add(-time.Hour))
	const tol = 5
	createPod(t, client, "bound", "edge-4", true, tolerateMaintenance(tol))
	boundAt := time.Now()
	time.Sleep(3 * time.Second)
	startController(t, client, Options{NodeMonitorGracePeriod: 2 * time.Second, NodeMonitorPeriod: 200 * time.Millisecond})
	keptUntil(t, client, boundAt.Add((tol-1)*time.Second-200*time.Millisecond), "bound")
	// Counted from the controller's start, the eviction would come at
	// boundAt+8s at the earliest: the bound is as close to that as a
	// loaded machine allows.
	goneBy(t, client, "bound", boundAt.Add((tol+2)*time.Second+500*time.Millisecond))
}

// A pod on the node before its NoExecute taint is evicted tolerationSeconds
// after the taint's timeAdded, whatever its own timestamps say.
func TestPodOnNodeBeforeTaintEvictedFromTimeAdded(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	startController(t, client, Options{NodeMonitorGracePeriod: 2 * time.Second, NodeMonitorPeriod: 200 * time.Millisecond})
	newSimNode(t, client, "edge-5")

	const tol = 3
	createPod(t, client, "bound", "edge-5", true, tolerateMaintenance(tol))
	direct := createPod(t, client, "direct", "edge-5", false, tolerateMaintenance(tol))
	// An agent clock an hour ahead does not postpone the eviction either.
	reportScheduledAt(t, client, direct, time.Now().Add(time.Hour))
	time.Sleep(1500 * time.Millisecond)

	added := time.Now().Truncate(time.Second)
	taintNode(t, client, "edge-5", added)
	keptUntil(t, client, added.Add(tol*time.Second-200*time.Millisecond), "bound", "direct")
	// Room for a loaded machine: the agent's clock would postpone it by
	// an hour.
	for _, name := range []string{"bound", "direct"} {
		goneBy(t, client, name, added.Add((tol+6)*time.Second))
	}
}

func TestPodTimes(t *testing.T) {
	c := &Controller{podSeen: map[string]map[types.UID]time.Time{}}
	pod := func(uid string, created, scheduled time.Duration) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), CreationTimestamp: *mtime(created)},
			Status: corev1.PodStatus{Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: *mtime(scheduled)},
			}},
		}
	}
	bound := pod("bound", 0, 10*time.Second)           // bound at 10s
	skewed := pod("skewed", 20*time.Second, time.Hour) // created at 20s, agent clock an hour ahead
	later := pod("later", 0, 2*time.Hour)              // first seen at 90s
	onNode := c.podTimes("n1", []*corev1.Pod{bound, skewed}, at(30*time.Second))
	for _, tc := range []struct {
		pod  *corev1.Pod
		want time.Time
	}{
		{bound, at(10 * time.Second)},  // the binding, before the sighting
		{skewed, at(30 * time.Second)}, // the sighting, before the agent's time
	} {
		if got := onNode(tc.pod); !got.Equal(tc.want) {
			t.Errorf("pod %s on the node since %v, want %v", tc.pod.UID, got, tc.want)
		}
	}
	// A later look keeps the first sighting, adds new pods and forgets
	// those gone.
	onNode = c.podTimes("n1", []*corev1.Pod{skewed, later}, at(90*time.Second))
	if got := onNode(skewed); !got.Equal(at(30 * time.Second)) {
		t.Errorf("skewed pod on the node since %v, want the first sighting %v", got, at(30*time.Second))
	}
	if got := onNode(later); !got.Equal(at(90 * time.Second)) {
		t.Errorf("later pod on the node since %v, want %v", got, at(90*time.Second))
	}
	if _, ok := c.podSeen["n1"][bound.UID]; ok {
		t.Error("a pod gone from the node is remembered")
	}
	// No NoExecute taint: nothing is remembered, and the pods' own
	// timestamps count again.
	c.podTimes("n1", nil, at(100*time.Second))
	if _, ok := c.podSeen["n1"]; ok {
		t.Error("a node without pods to watch is remembered")
	}
	if got := c.podTimes("n1", nil, at(100*time.Second))(bound); !got.Equal(at(10 * time.Second)) {
		t.Errorf("unseen bound pod on the node since %v, want %v", got, at(10*time.Second))
	}
}
