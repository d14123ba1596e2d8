package disruption

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

const ns = "default"

// clock is the controller's time, moved by the test.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func start(t *testing.T) (kubernetes.Interface, *clock) {
	t.Helper()
	cs := testcluster.Start(t).Client(t)
	factory := informers.NewSharedInformerFactory(cs, 0)
	ctrl := New(cs, factory, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	clk := &clock{}
	ctrl.now = clk.now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx, 2) }()
	factory.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		factory.Shutdown()
	})
	return cs, clk
}

// runningPod creates a Running pod of owner on a node, Ready or not.
func runningPod(t *testing.T, cs kubernetes.Interface, name string, owner *metav1.OwnerReference, ready bool) {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "edge-1", Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}}}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	p, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setReady(t, cs, p, ready)
}

func setReady(t *testing.T, cs kubernetes.Interface, p *corev1.Pod, ready bool) {
	t.Helper()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// want is a budget's status, in short.
type want struct {
	expected, desired, healthy, allowed int32
	reason                              string
	disrupted                           int
}

// waitStatus waits until the budget's status says w, for its generation.
func waitStatus(t *testing.T, cs kubernetes.Interface, name string, w want) *policyv1.PodDisruptionBudget {
	t.Helper()
	var pdb *policyv1.PodDisruptionBudget
	testenv.Poll(t, "budget "+name+"'s status", func() (bool, string) {
		var err error
		if pdb, err = cs.PolicyV1().PodDisruptionBudgets(ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		st := pdb.Status
		reason := ""
		if c := apimeta.FindStatusCondition(st.Conditions, policyv1.DisruptionAllowedCondition); c != nil {
			reason = c.Reason
		}
		got := want{st.ExpectedPods, st.DesiredHealthy, st.CurrentHealthy, st.DisruptionsAllowed, reason, len(st.DisruptedPods)}
		return got == w && st.ObservedGeneration == pdb.Generation,
			fmt.Sprintf("%+v (observed generation %d of %d), want %+v", got, st.ObservedGeneration, pdb.Generation, w)
	})
	return pdb
}

// TestDisruptionController: the controller keeps each budget's status as
// Kubernetes' disruption controller does, and the eviction API spends what
// it allows.
func TestDisruptionController(t *testing.T) {
	cs, clk := start(t)
	ctx := context.Background()
	rs, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.ReplicaSetSpec{
		Replicas: new(int32(3)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owner := metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))
	for i := range 3 {
		runningPod(t, cs, fmt.Sprint("web-", i), owner, true)
	}
	pdbs := cs.PolicyV1().PodDisruptionBudgets(ns)
	_, err = pdbs.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: policyv1.PodDisruptionBudgetSpec{
		MinAvailable: new(intstr.FromInt32(2)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cs, "web", want{3, 2, 3, 1, policyv1.SufficientPodsReason, 0})

	// An eviction spends the disruption; the pod, being deleted, no
	// longer counts, and leaves disruptedPods.
	if err := cs.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cs, "web", want{3, 2, 2, 0, policyv1.InsufficientPodsReason, 0})
	err = cs.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: ns}})
	if err == nil {
		t.Error("a second eviction was allowed")
	}

	// maxUnavailable and percentages count the controller's replicas;
	// percentages round up.
	pdb, err := pdbs.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable = nil, new(intstr.FromString("50%"))
	if _, err := pdbs.Update(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cs, "web", want{3, 1, 2, 1, policyv1.SufficientPodsReason, 0})
	rs.Spec.Replicas = new(int32(4))
	if _, err := cs.AppsV1().ReplicaSets(ns).Update(ctx, rs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cs, "web", want{4, 2, 2, 0, policyv1.InsufficientPodsReason, 0})
	rs, err = cs.AppsV1().ReplicaSets(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs.Spec.Replicas = new(int32(3))
	if _, err := cs.AppsV1().ReplicaSets(ns).Update(ctx, rs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cs, "web", want{3, 1, 2, 1, policyv1.SufficientPodsReason, 0})

	// An unready pod is not healthy.
	p, err := cs.CoreV1().Pods(ns).Get(ctx, "web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setReady(t, cs, p, false)
	waitStatus(t, cs, "web", want{3, 1, 1, 0, policyv1.InsufficientPodsReason, 0})
	p, _ = cs.CoreV1().Pods(ns).Get(ctx, "web-1", metav1.GetOptions{})
	setReady(t, cs, p, true)
	waitStatus(t, cs, "web", want{3, 1, 2, 1, policyv1.SufficientPodsReason, 0})

	// A pod an eviction recorded but that did not go counts again after
	// two minutes.
	pdb, err = pdbs.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pdb.Status.DisruptedPods = map[string]metav1.Time{"web-2": metav1.NewTime(clk.now())}
	if _, err := pdbs.UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cs, "web", want{3, 1, 1, 0, policyv1.InsufficientPodsReason, 1})
	clk.advance(DeletionTimeout + time.Second)
	// The controller synced it again when the entry was due (in real
	// time, two minutes on); here a change of the budget's labels does.
	if _, err := pdbs.Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"labels":{"tick":"1"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, cs, "web", want{3, 1, 2, 1, policyv1.SufficientPodsReason, 0})

	// Pods of a controller without a scale: the status cannot be
	// computed, and nothing may be disrupted.
	ds := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agentd", UID: "ds-uid", Controller: new(true)}
	runningPod(t, cs, "daemon-0", ds, true)
	pdb = waitStatus(t, cs, "web", want{3, 1, 2, 0, policyv1.SyncFailedReason, 0})
	if c := apimeta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition); c.Message != "daemonsets.apps does not implement the scale subresource" {
		t.Errorf("SyncFailed message %q", c.Message)
	}
}

// TestEmptySelectorAndStaleDisruption: in policy/v1 an empty selector
// selects every pod of the namespace (a null one none); and a
// DisruptionTarget condition left on a pod that was not deleted is reset
// to False after two minutes.
func TestEmptySelectorAndStaleDisruption(t *testing.T) {
	cs, clk := start(t)
	ctx := context.Background()
	runningPod(t, cs, "a", nil, true)
	runningPod(t, cs, "b", nil, false)
	pdbs := cs.PolicyV1().PodDisruptionBudgets(ns)
	for name, sel := range map[string]*metav1.LabelSelector{"every": {}, "none": nil} {
		_, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: new(intstr.FromInt32(0)), Selector: sel}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitStatus(t, cs, "every", want{2, 0, 1, 1, policyv1.SufficientPodsReason, 0})
	waitStatus(t, cs, "none", want{0, 0, 0, 0, policyv1.InsufficientPodsReason, 0})

	p, err := cs.CoreV1().Pods(ns).Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	marked := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI"}
	marked.LastTransitionTime = metav1.NewTime(clk.now().Add(-StalePodDisruptionTimeout - time.Second))
	p.Status.Conditions = append(p.Status.Conditions, marked)
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, "the stale DisruptionTarget reset", func() (bool, string) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "a", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		c := p.Status.Conditions[len(p.Status.Conditions)-1]
		return c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionFalse, fmt.Sprintf("%+v", p.Status.Conditions)
	})
}

// TestScaledControllerPods: as in Kubernetes, a percentage counts the
// replicas of the StatefulSet or ReplicationController that controls the
// pods (4, of which 3 run).
func TestScaledControllerPods(t *testing.T) {
	labels := map[string]string{"app": "web"}
	template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "db:v1"}}}}
	for kind, create := range map[string]func(context.Context, kubernetes.Interface) (*metav1.OwnerReference, error){
		"StatefulSet": func(ctx context.Context, cs kubernetes.Interface) (*metav1.OwnerReference, error) {
			ss, err := cs.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: appsv1.StatefulSetSpec{
				Replicas: new(int32(4)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template}}, metav1.CreateOptions{})
			if err != nil {
				return nil, err
			}
			return metav1.NewControllerRef(ss, appsv1.SchemeGroupVersion.WithKind("StatefulSet")), nil
		},
		"ReplicationController": func(ctx context.Context, cs kubernetes.Interface) (*metav1.OwnerReference, error) {
			rc, err := cs.CoreV1().ReplicationControllers(ns).Create(ctx, &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "db"},
				Spec: corev1.ReplicationControllerSpec{Replicas: new(int32(4)), Selector: labels, Template: &template}}, metav1.CreateOptions{})
			if err != nil {
				return nil, err
			}
			return metav1.NewControllerRef(rc, corev1.SchemeGroupVersion.WithKind("ReplicationController")), nil
		},
	} {
		t.Run(kind, func(t *testing.T) {
			cs, _ := start(t)
			ctx := context.Background()
			owner, err := create(ctx, cs)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				runningPod(t, cs, fmt.Sprint("db-", i), owner, true)
			}
			if _, err := cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: policyv1.PodDisruptionBudgetSpec{
				MaxUnavailable: new(intstr.FromString("50%")), Selector: &metav1.LabelSelector{MatchLabels: labels}}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, cs, "web", want{4, 2, 3, 1, policyv1.SufficientPodsReason, 0})
		})
	}
}
