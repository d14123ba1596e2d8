package statefulset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/util/retry"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/gc"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

const ns = "default"

// clock is the controller's time, moved by the test.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// start runs a control plane with this controller (and, for deletes, the
// garbage collector). There is no node agent: the tests set pods' status.
func start(t *testing.T) (*testcluster.Cluster, kubernetes.Interface) {
	c, cs, _, _ := startWithClock(t)
	return c, cs
}

func startWithClock(t *testing.T) (*testcluster.Cluster, kubernetes.Interface, *clock, *Controller) {
	t.Helper()
	c := testcluster.Start(t)
	cs := c.Client(t)
	factory := informers.NewSharedInformerFactory(cs, 0)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctrl := New(cs, factory, log)
	if ctrl.Name() != Name {
		t.Fatalf("Name() = %q", ctrl.Name())
	}
	clk := &clock{}
	ctrl.now = clk.now
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 2)
	go func() { done <- ctrl.Run(ctx, 2) }()
	mc, err := metadata.NewForConfig(c.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- gc.New(cs, mc, gc.Options{}, log).Run(ctx, 1) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			// A test may end before a controller's caches synced.
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		}
		factory.Shutdown()
	})
	return c, cs, clk, ctrl
}

func newSet(name string, replicas int32, policy appsv1.PodManagementPolicyType) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         name,
			PodManagementPolicy: policy,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}},
			},
		},
	}
}

func createSet(t *testing.T, cs kubernetes.Interface, set *appsv1.StatefulSet) *appsv1.StatefulSet {
	t.Helper()
	out, err := cs.AppsV1().StatefulSets(ns).Create(context.Background(), set, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pods lists the set's pods (terminating ones included) in ordinal order.
func pods(t *testing.T, cs kubernetes.Interface, set string) []corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + set})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b corev1.Pod) int { return ordinalOf(&a) - ordinalOf(&b) })
	return list.Items
}

func names(ps []corev1.Pod) string {
	var n []string
	for _, p := range ps {
		n = append(n, p.Name)
	}
	return strings.Join(n, ",")
}

// waitPods waits until the set's pods are exactly want (names, in ordinal order).
func waitPods(t *testing.T, cs kubernetes.Interface, set, want string) []corev1.Pod {
	t.Helper()
	var ps []corev1.Pod
	testenv.Poll(t, set+"'s pods "+want, func() (bool, string) {
		ps = pods(t, cs, set)
		return names(ps) == want, names(ps)
	})
	return ps
}

// setPhase sets a pod's phase, Ready with phase Running.
func setPhase(t *testing.T, cs kubernetes.Interface, name string, phase corev1.PodPhase, ready bool) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Phase = phase
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
		_, err = cs.CoreV1().Pods(ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("set %s %s: %v", name, phase, err)
	}
}

func ready(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	setPhase(t, cs, name, corev1.PodRunning, true)
}

// readyAll makes the named pods Ready.
func readyAll(t *testing.T, cs kubernetes.Interface, names ...string) {
	t.Helper()
	for _, n := range names {
		ready(t, cs, n)
	}
}

// waitStatus waits until cond holds for the set's status at its generation.
func waitStatus(t *testing.T, cs kubernetes.Interface, name, what string, cond func(st appsv1.StatefulSetStatus) bool) *appsv1.StatefulSet {
	t.Helper()
	var set *appsv1.StatefulSet
	testenv.Poll(t, name+"'s status: "+what, func() (bool, string) {
		var err error
		if set, err = cs.AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		return set.Status.ObservedGeneration == set.Generation && cond(set.Status), fmt.Sprintf("%+v (generation %d)", set.Status, set.Generation)
	})
	return set
}

func updateSet(t *testing.T, cs kubernetes.Interface, name string, mutate func(*appsv1.StatefulSet)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		set, err := cs.AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(set)
		_, err = cs.AppsV1().StatefulSets(ns).Update(context.Background(), set, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOrderedReadyCreatesAndRemovesInOrder: pods are made one at a time,
// each once the one below is Running and Ready, with their identity;
// scaled down, they go from the highest ordinal, one at a time.
func TestOrderedReadyCreatesAndRemovesInOrder(t *testing.T) {
	_, cs := start(t)
	ctx := context.Background()
	set := createSet(t, cs, newSet("web", 3, ""))

	ps := waitPods(t, cs, "web", "web-0")
	p := ps[0]
	ref := metav1.GetControllerOf(&p)
	if ref == nil || ref.UID != set.UID || ref.Kind != "StatefulSet" || p.Spec.Hostname != "web-0" || p.Spec.Subdomain != "web" ||
		p.Labels[appsv1.StatefulSetPodNameLabel] != "web-0" || p.Labels[appsv1.PodIndexLabel] != "0" || p.Labels[appsv1.ControllerRevisionHashLabelKey] == "" {
		t.Fatalf("pod web-0: owner %+v, hostname %q, subdomain %q, labels %v", ref, p.Spec.Hostname, p.Spec.Subdomain, p.Labels)
	}
	// Running but not Ready: web-1 waits.
	setPhase(t, cs, "web-0", corev1.PodRunning, false)
	waitStatus(t, cs, "web", "one pod, not ready", func(st appsv1.StatefulSetStatus) bool { return st.Replicas == 1 && st.ReadyReplicas == 0 })
	if got := names(pods(t, cs, "web")); got != "web-0" {
		t.Fatalf("a pod was made before web-0 was ready: %s", got)
	}
	ready(t, cs, "web-0")
	waitPods(t, cs, "web", "web-0,web-1")
	ready(t, cs, "web-1")
	waitPods(t, cs, "web", "web-0,web-1,web-2")
	ready(t, cs, "web-2")
	st := waitStatus(t, cs, "web", "3 ready", func(st appsv1.StatefulSetStatus) bool {
		return st.Replicas == 3 && st.ReadyReplicas == 3 && st.AvailableReplicas == 3 && st.CurrentReplicas == 3 && st.UpdatedReplicas == 3
	}).Status
	if st.CurrentRevision == "" || st.CurrentRevision != st.UpdateRevision || st.CollisionCount == nil || *st.CollisionCount != 0 ||
		p.Labels[appsv1.ControllerRevisionHashLabelKey] != st.UpdateRevision {
		t.Fatalf("status %+v, pod revision %s", st, p.Labels[appsv1.ControllerRevisionHashLabelKey])
	}

	waitEvent(t, cs, "SuccessfulCreate", "create Pod web-0 in StatefulSet web successful")

	// Scale down to 1 while web-0 is unready: nothing is removed. Once it
	// is ready, web-2 goes, then web-1 (no kubelet holds them terminating,
	// so the order is watched).
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	setPhase(t, cs, "web-0", corev1.PodRunning, false)
	// Once the controller has seen it (it acts on its cache).
	waitStatus(t, cs, "web", "web-0 unready", func(st appsv1.StatefulSetStatus) bool { return st.Replicas == 3 && st.ReadyReplicas == 2 })
	updateSet(t, cs, "web", func(s *appsv1.StatefulSet) { s.Spec.Replicas = new(int32(1)) })
	waitStatus(t, cs, "web", "scaled to 1, web-0 unready", func(st appsv1.StatefulSetStatus) bool { return st.Replicas == 3 && st.ReadyReplicas == 2 })
	if got := names(pods(t, cs, "web")); got != "web-0,web-1,web-2" {
		t.Fatalf("a pod was removed while web-0 was unready: %s", got)
	}
	ready(t, cs, "web-0")
	waitPods(t, cs, "web", "web-0")
	var deleted []string
	for len(deleted) < 2 {
		ev := <-w.ResultChan()
		if ev.Type == watch.Deleted {
			deleted = append(deleted, ev.Object.(*corev1.Pod).Name)
		}
	}
	if !slices.Equal(deleted, []string{"web-2", "web-1"}) {
		t.Fatalf("deleted in order %v", deleted)
	}
	waitEvent(t, cs, "SuccessfulDelete", "delete Pod web-2 in StatefulSet web successful")
	waitStatus(t, cs, "web", "1 replica", func(st appsv1.StatefulSetStatus) bool { return st.Replicas == 1 && st.ReadyReplicas == 1 })

	// While web-0 is unhealthy nothing is made.
	setPhase(t, cs, "web-0", corev1.PodRunning, false)
	waitStatus(t, cs, "web", "web-0 unready", func(st appsv1.StatefulSetStatus) bool { return st.Replicas == 1 && st.ReadyReplicas == 0 })
	updateSet(t, cs, "web", func(s *appsv1.StatefulSet) { s.Spec.Replicas = new(int32(2)) })
	waitStatus(t, cs, "web", "scaled to 2, web-0 unready", func(st appsv1.StatefulSetStatus) bool { return st.Replicas == 1 && st.ReadyReplicas == 0 })
	if got := names(pods(t, cs, "web")); got != "web-0" {
		t.Fatalf("a pod was made while web-0 was unready: %s", got)
	}
	ready(t, cs, "web-0")
	waitPods(t, cs, "web", "web-0,web-1")

	// Deleting the set deletes its pods (garbage collector).
	if err := cs.AppsV1().StatefulSets(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, cs, "web", "")
}

// TestParallelAndOrdinals: a Parallel set makes and removes its pods all
// at once, not waiting for readiness, at the ordinals from
// spec.ordinals.start.
func TestParallelAndOrdinals(t *testing.T) {
	_, cs := start(t)
	set := newSet("db", 3, appsv1.ParallelPodManagement)
	set.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
	createSet(t, cs, set)
	// All at once, none ready.
	waitPods(t, cs, "db", "db-5,db-6,db-7")
	waitStatus(t, cs, "db", "3 pods", func(st appsv1.StatefulSetStatus) bool { return st.Replicas == 3 && st.ReadyReplicas == 0 })
	p := pods(t, cs, "db")[2]
	if p.Labels[appsv1.PodIndexLabel] != "7" || p.Spec.Hostname != "db-7" {
		t.Fatalf("db-7: labels %v hostname %q", p.Labels, p.Spec.Hostname)
	}
	// Scaled to 1, both extra pods go at once, unready or not.
	updateSet(t, cs, "db", func(s *appsv1.StatefulSet) { s.Spec.Replicas = new(int32(1)) })
	waitPods(t, cs, "db", "db-5")
	// The start moves: db-5 goes, db-6 and db-7 come.
	updateSet(t, cs, "db", func(s *appsv1.StatefulSet) {
		s.Spec.Replicas = new(int32(2))
		s.Spec.Ordinals.Start = 6
	})
	waitPods(t, cs, "db", "db-6,db-7")
}

// TestFailedPodIsRecreated: a Failed pod is deleted and made again under
// its name, with the events of a delete and a create.
func TestFailedPodIsRecreated(t *testing.T) {
	_, cs := start(t)
	createSet(t, cs, newSet("web", 2, ""))
	waitPods(t, cs, "web", "web-0")
	ready(t, cs, "web-0")
	ps := waitPods(t, cs, "web", "web-0,web-1")
	ready(t, cs, "web-1")
	waitStatus(t, cs, "web", "2 ready", func(st appsv1.StatefulSetStatus) bool { return st.ReadyReplicas == 2 })
	setPhase(t, cs, "web-1", corev1.PodFailed, false)
	testenv.Poll(t, "web-1 made again", func() (bool, string) {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), "web-1", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return p.UID != ps[1].UID && p.Status.Phase != corev1.PodFailed, string(p.UID) + " " + string(p.Status.Phase)
	})
	// Only the delete's event, as kube's processReplica (it records no
	// RecreatingFailedPod any more); the delete's is recorded after where
	// that one was.
	testenv.Poll(t, "delete event", func() (bool, string) {
		evs, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=SuccessfulDelete"})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Message == "delete Pod web-1 in StatefulSet web successful" {
				return true, ""
			}
		}
		return false, fmt.Sprint(len(evs.Items), " events")
	})
	evs, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "type=Warning"})
	if err != nil || len(evs.Items) != 0 {
		t.Fatalf("warning events %v: %v", evs, err)
	}
}

// TestStatusDespiteAFailedPodWrite: a pod create that fails (the name is
// another pod's, which the set does not select) still lets the pass write
// the status, as kube's performUpdate.
func TestStatusDespiteAFailedPodWrite(t *testing.T) {
	_, cs := start(t)
	squatter := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: ns, Labels: map[string]string{"app": "other"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(context.Background(), squatter, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createSet(t, cs, newSet("web", 2, appsv1.ParallelPodManagement))
	waitPods(t, cs, "web", "web-0")
	ready(t, cs, "web-0")
	st := waitStatus(t, cs, "web", "web-0 ready", func(st appsv1.StatefulSetStatus) bool { return st.Replicas == 1 && st.ReadyReplicas == 1 }).Status
	if st.UpdateRevision == "" || st.CurrentRevision != st.UpdateRevision || st.CollisionCount == nil {
		t.Fatalf("status %+v", st)
	}
}

// TestParallelSlowStart: a Parallel set makes its pods in slow-start
// batches (1, 2, 4, …) that stop at the first failure, and then removes
// no condemned pod, as kube's runForAll: web-0's name is another pod's,
// so web-1 and web-2 are not made and web-5 (adopted) is not removed.
func TestParallelSlowStart(t *testing.T) {
	_, cs := start(t)
	ctx := context.Background()
	for name, app := range map[string]string{"web-0": "other", "web-5": "web"} {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	createSet(t, cs, newSet("web", 3, appsv1.ParallelPodManagement))
	// A pass that claimed web-5 wrote the status after its pod writes.
	waitStatus(t, cs, "web", "web-5 claimed", func(st appsv1.StatefulSetStatus) bool { return st.Replicas == 1 })
	ps := pods(t, cs, "web")
	if names(ps) != "web-5" || metav1.GetControllerOf(&ps[0]) == nil {
		t.Fatalf("pods %s, want web-5 only, adopted", names(ps))
	}
}

// TestStatusWhileDeleting: a set being deleted (held by a finalizer)
// makes and removes no pod but still writes its status, as kube's.
func TestStatusWhileDeleting(t *testing.T) {
	_, cs := start(t)
	ctx := context.Background()
	set := newSet("web", 1, "")
	set.Finalizers = []string{"example.com/hold"}
	createSet(t, cs, set)
	waitPods(t, cs, "web", "web-0")
	waitStatus(t, cs, "web", "web-0 made", func(st appsv1.StatefulSetStatus) bool { return st.Replicas == 1 && st.ReadyReplicas == 0 })
	if err := cs.AppsV1().StatefulSets(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ready(t, cs, "web-0")
	waitStatus(t, cs, "web", "web-0 ready while deleting", func(st appsv1.StatefulSetStatus) bool { return st.Replicas == 1 && st.ReadyReplicas == 1 })
	if got := names(pods(t, cs, "web")); got != "web-0" {
		t.Fatalf("pods of a set being deleted: %s", got)
	}
	updateSet(t, cs, "web", func(s *appsv1.StatefulSet) { s.Finalizers = nil })
}

// revisionsOf lists the revisions labelled as the set's, lowest first.
func revisionsOf(t *testing.T, cs kubernetes.Interface, set string) []appsv1.ControllerRevision {
	t.Helper()
	list, err := cs.AppsV1().ControllerRevisions(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + set})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b appsv1.ControllerRevision) int { return int(a.Revision - b.Revision) })
	return list.Items
}

func podRevisions(t *testing.T, cs kubernetes.Interface, set string) string {
	var r []string
	for _, p := range pods(t, cs, set) {
		r = append(r, p.Name+"="+p.Labels[appsv1.ControllerRevisionHashLabelKey])
	}
	return strings.Join(r, ",")
}

// TestRollingUpdateWithPartition: a new template replaces pods from the
// highest ordinal down to the partition, each waited for until Ready; the
// partition lowered to 0 finishes the rollout, which makes the update
// revision current.
func TestRollingUpdateWithPartition(t *testing.T) {
	_, cs := start(t)
	set := newSet("web", 3, appsv1.ParallelPodManagement)
	createSet(t, cs, set)
	waitPods(t, cs, "web", "web-0,web-1,web-2")
	readyAll(t, cs, "web-0", "web-1", "web-2")
	v1 := waitStatus(t, cs, "web", "3 ready", func(st appsv1.StatefulSetStatus) bool { return st.ReadyReplicas == 3 && st.CurrentReplicas == 3 }).Status.CurrentRevision

	updateSet(t, cs, "web", func(s *appsv1.StatefulSet) {
		s.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(1))
		s.Spec.Template.Spec.Containers[0].Image = "hello:v2"
	})
	st := waitStatus(t, cs, "web", "an update revision", func(st appsv1.StatefulSetStatus) bool { return st.UpdateRevision != v1 }).Status
	v2 := st.UpdateRevision
	if st.CurrentRevision != v1 {
		t.Fatalf("current revision %s, want %s", st.CurrentRevision, v1)
	}
	// web-2 is replaced first; web-1 waits for it to be Ready.
	testenv.Poll(t, "web-2 at v2", func() (bool, string) {
		got := podRevisions(t, cs, "web")
		return got == fmt.Sprintf("web-0=%s,web-1=%s,web-2=%s", v1, v1, v2), got
	})
	p := pods(t, cs, "web")[2]
	if p.Spec.Containers[0].Image != "hello:v2" {
		t.Fatalf("web-2 runs %s", p.Spec.Containers[0].Image)
	}
	waitStatus(t, cs, "web", "web-2 updated", func(st appsv1.StatefulSetStatus) bool {
		return st.UpdatedReplicas == 1 && st.CurrentReplicas == 2 && st.ReadyReplicas == 2
	})
	if got := podRevisions(t, cs, "web"); got != fmt.Sprintf("web-0=%s,web-1=%s,web-2=%s", v1, v1, v2) {
		t.Fatalf("web-1 replaced before web-2 was ready: %s", got)
	}
	ready(t, cs, "web-2")
	testenv.Poll(t, "web-1 at v2", func() (bool, string) {
		got := podRevisions(t, cs, "web")
		return got == fmt.Sprintf("web-0=%s,web-1=%s,web-2=%s", v1, v2, v2), got
	})
	ready(t, cs, "web-1")
	// The partition keeps web-0 at v1; the rollout is not finished.
	st = waitStatus(t, cs, "web", "partitioned rollout done", func(st appsv1.StatefulSetStatus) bool {
		return st.UpdatedReplicas == 2 && st.ReadyReplicas == 3
	}).Status
	if st.CurrentRevision != v1 || podRevisions(t, cs, "web") != fmt.Sprintf("web-0=%s,web-1=%s,web-2=%s", v1, v2, v2) {
		t.Fatalf("past the partition: %+v %s", st, podRevisions(t, cs, "web"))
	}
	// A deleted pod below the partition comes back at the current revision;
	// while it is missing, the pods left (all updated and ready) do not
	// complete the rollout: it takes spec.replicas of them. Twice, as a
	// rollout wrongly completed shows only in the pod made after it.
	for range 2 {
		old := pods(t, cs, "web")[0].UID
		if err := cs.CoreV1().Pods(ns).Delete(context.Background(), "web-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		testenv.Poll(t, "web-0 back at v1", func() (bool, string) {
			ps := pods(t, cs, "web")
			got := podRevisions(t, cs, "web")
			return len(ps) == 3 && ps[0].UID != old && ps[0].Status.Phase != corev1.PodRunning && got == fmt.Sprintf("web-0=%s,web-1=%s,web-2=%s", v1, v2, v2), got
		})
		st = waitStatus(t, cs, "web", "web-0 back, unready", func(st appsv1.StatefulSetStatus) bool {
			return st.Replicas == 3 && st.ReadyReplicas == 2
		}).Status
		if st.CurrentRevision != v1 || st.UpdateRevision != v2 {
			t.Fatalf("revisions %s/%s with web-0 at v1, want %s/%s", st.CurrentRevision, st.UpdateRevision, v1, v2)
		}
		ready(t, cs, "web-0")
	}

	updateSet(t, cs, "web", func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(0)) })
	testenv.Poll(t, "web-0 at v2", func() (bool, string) {
		got := podRevisions(t, cs, "web")
		return got == fmt.Sprintf("web-0=%s,web-1=%s,web-2=%s", v2, v2, v2), got
	})
	ready(t, cs, "web-0")
	waitStatus(t, cs, "web", "rollout complete", func(st appsv1.StatefulSetStatus) bool {
		return st.CurrentRevision == v2 && st.UpdateRevision == v2 && st.CurrentReplicas == 3 && st.UpdatedReplicas == 3
	})
}

// TestOnDelete: a new template changes no pod until one is deleted, which
// comes back at the update revision.
func TestOnDelete(t *testing.T) {
	_, cs := start(t)
	set := newSet("web", 2, appsv1.ParallelPodManagement)
	set.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	createSet(t, cs, set)
	waitPods(t, cs, "web", "web-0,web-1")
	readyAll(t, cs, "web-0", "web-1")
	v1 := waitStatus(t, cs, "web", "2 ready", func(st appsv1.StatefulSetStatus) bool { return st.ReadyReplicas == 2 }).Status.CurrentRevision
	updateSet(t, cs, "web", func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "hello:v2" })
	v2 := waitStatus(t, cs, "web", "update revision", func(st appsv1.StatefulSetStatus) bool { return st.UpdateRevision != v1 }).Status.UpdateRevision
	if got := podRevisions(t, cs, "web"); got != fmt.Sprintf("web-0=%s,web-1=%s", v1, v1) {
		t.Fatalf("OnDelete replaced a pod: %s", got)
	}
	if err := cs.CoreV1().Pods(ns).Delete(context.Background(), "web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, "web-0 at v2", func() (bool, string) {
		got := podRevisions(t, cs, "web")
		return got == fmt.Sprintf("web-0=%s,web-1=%s", v2, v1), got
	})
	ready(t, cs, "web-0")
	waitStatus(t, cs, "web", "one updated", func(st appsv1.StatefulSetStatus) bool {
		return st.UpdatedReplicas == 1 && st.CurrentReplicas == 1 && st.CurrentRevision == v1
	})
}

// TestRevisionHistoryLimit: old revisions beyond the limit are deleted,
// the live ones kept; a template rolled back to gets its revision
// renumbered, not a new one.
func TestRevisionHistoryLimit(t *testing.T) {
	_, cs := start(t)
	set := newSet("web", 1, "")
	set.Spec.RevisionHistoryLimit = new(int32(1))
	createSet(t, cs, set)
	waitPods(t, cs, "web", "web-0")
	ready(t, cs, "web-0")
	for _, image := range []string{"hello:v2", "hello:v3", "hello:v4"} {
		updateSet(t, cs, "web", func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = image })
		testenv.Poll(t, "web-0 runs "+image, func() (bool, string) {
			ps := pods(t, cs, "web")
			return len(ps) == 1 && ps[0].Spec.Containers[0].Image == image, names(ps)
		})
		ready(t, cs, "web-0")
		waitStatus(t, cs, "web", "rolled to "+image, func(st appsv1.StatefulSetStatus) bool {
			return st.CurrentRevision == st.UpdateRevision && st.ReadyReplicas == 1 && st.UpdatedReplicas == 1
		})
	}
	testenv.Poll(t, "two revisions kept", func() (bool, string) {
		rs := revisionsOf(t, cs, "web")
		var got []string
		for _, r := range rs {
			got = append(got, fmt.Sprint(r.Revision))
		}
		return slices.Equal(got, []string{"3", "4"}), strings.Join(got, ",")
	})
	// Back to v3: its revision becomes 5; no new revision is made.
	updateSet(t, cs, "web", func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "hello:v3" })
	testenv.Poll(t, "v3 renumbered", func() (bool, string) {
		rs := revisionsOf(t, cs, "web")
		var got []string
		for _, r := range rs {
			got = append(got, fmt.Sprint(r.Revision))
		}
		return slices.Equal(got, []string{"4", "5"}), strings.Join(got, ",")
	})
}

// TestAdoptAndRelease: an orphan named as a member and matching the
// selector is adopted and given its identity labels; a pod relabelled out
// of the selector is released.
func TestAdoptAndRelease(t *testing.T) {
	_, cs := start(t)
	ctx := context.Background()
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}}}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// OnDelete: the orphan, of no revision, is not replaced by a rollout.
	set := newSet("web", 1, "")
	set.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	set = createSet(t, cs, set)
	testenv.Poll(t, "web-0 adopted", func() (bool, string) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ref := metav1.GetControllerOf(p)
		return ref != nil && ref.UID == set.UID, fmt.Sprint(p.OwnerReferences)
	})
	// As kube, the identity is enforced on a pod once it is Running and Ready.
	ready(t, cs, "web-0")
	testenv.Poll(t, "web-0 with its identity", func() (bool, string) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ref := metav1.GetControllerOf(p)
		return ref != nil && ref.UID == set.UID && p.Labels[appsv1.PodIndexLabel] == "0", fmt.Sprint(p.OwnerReferences, p.Labels)
	})
	waitStatus(t, cs, "web", "1 ready", func(st appsv1.StatefulSetStatus) bool { return st.ReadyReplicas == 1 })

	p, err := cs.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Labels["app"] = "other"
	if _, err := cs.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, "web-0 released", func() (bool, string) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, "gone"
		}
		if err != nil {
			return false, err.Error()
		}
		return metav1.GetControllerOf(p) == nil, fmt.Sprint(p.OwnerReferences)
	})
}

// TestMinReadySeconds: a ready pod is available once it has been ready
// for minReadySeconds, and with OrderedReady the next pod waits for that.
func TestMinReadySeconds(t *testing.T) {
	_, cs, clk, _ := startWithClock(t)
	set := newSet("web", 2, "")
	set.Spec.MinReadySeconds = 3600
	createSet(t, cs, set)
	waitPods(t, cs, "web", "web-0")
	ready(t, cs, "web-0")
	waitStatus(t, cs, "web", "ready, not available", func(st appsv1.StatefulSetStatus) bool {
		return st.ReadyReplicas == 1 && st.AvailableReplicas == 0
	})
	if got := names(pods(t, cs, "web")); got != "web-0" {
		t.Fatalf("web-1 made before web-0 was available: %s", got)
	}
	clk.advance(time.Hour)
	// The controller looks again when the pod is due (an hour on, in real
	// time); here a change of the set's labels brings the sync.
	updateSet(t, cs, "web", func(s *appsv1.StatefulSet) { s.Labels = map[string]string{"tick": "1"} })
	waitStatus(t, cs, "web", "available", func(st appsv1.StatefulSetStatus) bool { return st.AvailableReplicas == 1 })
	waitPods(t, cs, "web", "web-0,web-1")
}

const kubectlSetYAML = `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: main
        image: %s
`

// autoReady plays the node agent for the set's pods: each pod that is not
// Running is made Running and Ready, until the test ends.
func autoReady(t *testing.T, cs kubernetes.Interface, set string) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		for ctx.Err() == nil {
			list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + set})
			if err == nil {
				for _, p := range list.Items {
					if p.Status.Phase == corev1.PodRunning || p.DeletionTimestamp != nil {
						continue
					}
					p.Status.Phase = corev1.PodRunning
					p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
					cs.CoreV1().Pods(ns).UpdateStatus(ctx, &p, metav1.UpdateOptions{}) // a conflict is retried on the next round
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// TestKubectlRollout: the real kubectl, unchanged, applies, scales,
// describes, watches the rollout of, lists the history of, undoes and
// deletes a StatefulSet this controller runs.
func TestKubectlRollout(t *testing.T) {
	c, cs := start(t)
	dir := t.TempDir()
	kubectl := func(stdin string, args ...string) string {
		t.Helper()
		return testenv.MustKubectl(t, c.Kubeconfig(), dir, stdin, args...)
	}
	mustContain := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("output lacks %q:\n%s", w, out)
			}
		}
	}
	autoReady(t, cs, "web")
	mustContain(kubectl(fmt.Sprintf(kubectlSetYAML, "hello:v1"), "apply", "-f", "-"), "statefulset.apps/web created")
	v1 := waitStatus(t, cs, "web", "2 ready", func(st appsv1.StatefulSetStatus) bool {
		return st.ReadyReplicas == 2 && st.CurrentRevision == st.UpdateRevision
	}).Status.CurrentRevision
	// As against kube: a RollingUpdate set with rollingUpdate (partition
	// defaulted to 0) is a partitioned rollout to kubectl.
	const done = "partitioned roll out complete: 2 new pods have been updated..."
	mustContain(kubectl("", "rollout", "status", "sts/web", "--timeout=50s"), done)
	mustContain(kubectl("", "get", "sts", "web"), "web    2/2")
	mustContain(kubectl("", "describe", "sts", "web"), "Pods Status:", "2 Running", "SuccessfulCreate", "create Pod web-1 in StatefulSet web successful")

	mustContain(kubectl(fmt.Sprintf(kubectlSetYAML, "hello:v2"), "apply", "-f", "-"), "statefulset.apps/web configured")
	mustContain(kubectl("", "rollout", "status", "sts/web", "--timeout=50s"), done)
	v2 := waitStatus(t, cs, "web", "at v2", func(st appsv1.StatefulSetStatus) bool { return st.CurrentRevision != v1 }).Status.CurrentRevision
	for _, p := range pods(t, cs, "web") {
		if p.Spec.Containers[0].Image != "hello:v2" || p.Labels[appsv1.ControllerRevisionHashLabelKey] != v2 {
			t.Fatalf("pod %s runs %s at %s after the rollout", p.Name, p.Spec.Containers[0].Image, p.Labels[appsv1.ControllerRevisionHashLabelKey])
		}
	}
	revisions := func() string {
		t.Helper()
		var revs []string
		for _, l := range strings.Split(kubectl("", "rollout", "history", "sts/web"), "\n")[1:] {
			if f := strings.Fields(l); len(f) > 0 && f[0] != "REVISION" {
				revs = append(revs, f[0])
			}
		}
		return strings.Join(revs, ",")
	}
	if got := revisions(); got != "1,2" {
		t.Fatalf("rollout history: %s", got)
	}
	mustContain(kubectl("", "rollout", "history", "sts/web", "--revision=1"), "hello:v1")

	mustContain(kubectl("", "rollout", "undo", "sts/web"), "statefulset.apps/web rolled back")
	mustContain(kubectl("", "rollout", "status", "sts/web", "--timeout=50s"), done)
	waitStatus(t, cs, "web", "back at v1", func(st appsv1.StatefulSetStatus) bool { return st.CurrentRevision == v1 && st.UpdateRevision == v1 })
	if out := kubectl("", "get", "sts", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); out != "hello:v1" {
		t.Fatalf("image after undo: %q", out)
	}
	// The v1 revision is renumbered, not made again.
	if got := revisions(); got != "2,3" {
		t.Fatalf("rollout history after undo: %s", got)
	}

	mustContain(kubectl("", "scale", "sts", "web", "--replicas=1"), "statefulset.apps/web scaled")
	waitPods(t, cs, "web", "web-0")
	mustContain(kubectl("", "delete", "sts", "web"), `statefulset.apps "web" deleted`)
	waitPods(t, cs, "web", "")
	testenv.Poll(t, "revisions collected", func() (bool, string) {
		rs := revisionsOf(t, cs, "web")
		return len(rs) == 0, fmt.Sprint(len(rs))
	})
}

// TestOrphanedAndAdoptedAgain: a set deleted with its dependents orphaned
// and made again adopts its pods and revisions: no pod is replaced and
// the history goes on.
func TestOrphanedAndAdoptedAgain(t *testing.T) {
	_, cs := start(t)
	ctx := context.Background()
	createSet(t, cs, newSet("web", 2, appsv1.ParallelPodManagement))
	ps := waitPods(t, cs, "web", "web-0,web-1")
	readyAll(t, cs, "web-0", "web-1")
	rev := waitStatus(t, cs, "web", "2 ready", func(st appsv1.StatefulSetStatus) bool { return st.ReadyReplicas == 2 }).Status.UpdateRevision
	orphan := metav1.DeletePropagationOrphan
	if err := cs.AppsV1().StatefulSets(ns).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, "pods and revisions orphaned", func() (bool, string) {
		var owned []string
		for _, p := range pods(t, cs, "web") {
			if metav1.GetControllerOf(&p) != nil {
				owned = append(owned, p.Name)
			}
		}
		for _, r := range revisionsOf(t, cs, "web") {
			if metav1.GetControllerOf(&r) != nil {
				owned = append(owned, r.Name)
			}
		}
		_, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
		return len(owned) == 0 && apierrors.IsNotFound(err), fmt.Sprint(owned, err)
	})
	set := createSet(t, cs, newSet("web", 2, appsv1.ParallelPodManagement))
	st := waitStatus(t, cs, "web", "adopted, 2 ready", func(st appsv1.StatefulSetStatus) bool {
		return st.ReadyReplicas == 2 && st.UpdatedReplicas == 2 && st.CurrentRevision == st.UpdateRevision
	}).Status
	if st.UpdateRevision != rev || *st.CollisionCount != 0 {
		t.Fatalf("update revision %s (was %s), collisions %d", st.UpdateRevision, rev, *st.CollisionCount)
	}
	for i, p := range pods(t, cs, "web") {
		if p.UID != ps[i].UID || metav1.GetControllerOf(&p) == nil || metav1.GetControllerOf(&p).UID != set.UID {
			t.Fatalf("pod %s replaced or not adopted: %v", p.Name, p.OwnerReferences)
		}
	}
	rs := revisionsOf(t, cs, "web")
	if len(rs) != 1 || rs[0].Name != rev || metav1.GetControllerOf(&rs[0]).UID != set.UID {
		t.Fatalf("revisions %v", rs)
	}
}

// TestRevisionNameCollision: a revision name held by another owner raises
// the collision count, and the template's revision gets another name.
func TestRevisionNameCollision(t *testing.T) {
	_, cs := start(t)
	ctx := context.Background()
	// The revision name's hash depends on the template only: a set of
	// another name and the same template shows it.
	probe := newSet("web", 0, "")
	probe.Name = "probe"
	createSet(t, cs, probe)
	hash := strings.TrimPrefix(waitStatus(t, cs, "probe", "a revision", func(st appsv1.StatefulSetStatus) bool { return st.UpdateRevision != "" }).Status.UpdateRevision, "probe-")
	holder, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "holder"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.AppsV1().ControllerRevisions(ns).Create(ctx, &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: "web-" + hash, OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(holder, corev1.SchemeGroupVersion.WithKind("ConfigMap"))}},
		Data:       runtime.RawExtension{Raw: []byte(`{}`)}, Revision: 1}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	createSet(t, cs, newSet("web", 1, ""))
	st := waitStatus(t, cs, "web", "a revision", func(st appsv1.StatefulSetStatus) bool { return st.UpdateRevision != "" }).Status
	if *st.CollisionCount != 1 || st.UpdateRevision == "web-"+hash {
		t.Fatalf("collision count %d, update revision %s", *st.CollisionCount, st.UpdateRevision)
	}
	v1 := st.UpdateRevision
	waitPods(t, cs, "web", "web-0")
	ready(t, cs, "web-0")

	// Rolled to v2 and back, the template finds its revision by its data
	// (its name was hashed with the collision count it had then).
	updateSet(t, cs, "web", func(s *appsv1.StatefulSet) {
		s.Status.CollisionCount = nil // ignored: the status is the controller's
		s.Spec.Template.Spec.Containers[0].Image = "hello:v2"
	})
	waitStatus(t, cs, "web", "at v2", func(st appsv1.StatefulSetStatus) bool { return st.UpdateRevision != v1 })
	updateSet(t, cs, "web", func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "hello:v1" })
	waitStatus(t, cs, "web", "back at v1", func(st appsv1.StatefulSetStatus) bool { return st.UpdateRevision == v1 })
	var got []string
	for _, r := range revisionsOf(t, cs, "web") {
		if !strings.HasPrefix(r.Name, "web-") { // the probe's
			continue
		}
		got = append(got, fmt.Sprintf("%s:%d", r.Name, r.Revision))
	}
	if len(got) != 2 || got[1] != v1+":3" {
		t.Fatalf("revisions %v, want two with %s the third", got, v1)
	}
}

// TestOwnedRevisionCollision: the revision name the template hashes to is
// already one of the set's, holding other data, and older than its newest:
// it is left as it is and collisionCount raised, as kube's
// CreateControllerRevision. Revisions carry kube's hash label.
func TestOwnedRevisionCollision(t *testing.T) {
	_, cs, _, ctrl := startWithClock(t)
	ctx := context.Background()
	// The hash of the template as the API server defaults it.
	dry, err := cs.AppsV1().StatefulSets(ns).Create(ctx, newSet("web", 1, ""), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := controller.TemplatePatch(&dry.Spec.Template)
	if err != nil {
		t.Fatal(err)
	}
	hash := controller.HashRevision(data, new(int32(0)))
	// Orphans the set's selector matches, so it adopts them; the set is
	// made once the controller's cache holds them, as its revision
	// numbers follow the revisions it knows.
	for i, name := range []string{"web-" + hash, "web-older"} {
		_, err := cs.AppsV1().ControllerRevisions(ns).Create(ctx, &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
			Data:       runtime.RawExtension{Raw: []byte(`{}`)}, Revision: int64(i + 1)}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	testenv.Poll(t, "the controller to see the orphans", func() (bool, string) {
		crs, err := ctrl.revisions.Lister.ControllerRevisions(ns).List(labels.Everything())
		return err == nil && len(crs) == 2, fmt.Sprint(len(crs), err)
	})
	createSet(t, cs, newSet("web", 1, ""))
	st := waitStatus(t, cs, "web", "a revision", func(st appsv1.StatefulSetStatus) bool { return st.UpdateRevision != "" }).Status
	if *st.CollisionCount != 1 || st.UpdateRevision == "web-"+hash {
		t.Fatalf("collision count %d, update revision %s", *st.CollisionCount, st.UpdateRevision)
	}
	var got []string
	for _, r := range revisionsOf(t, cs, "web") {
		if strings.HasPrefix(r.Name, "web-") {
			got = append(got, fmt.Sprintf("%s:%d", r.Name, r.Revision))
		}
		made := r.Name != "web-older" && r.Name != "web-"+hash
		if h := r.Labels[controller.HistoryHashLabel]; made && (h == "" || !strings.HasSuffix(r.Name, "-"+h)) {
			t.Errorf("revision %s labels %v", r.Name, r.Labels)
		}
		if _, ok := r.Labels[appsv1.ControllerRevisionHashLabelKey]; ok {
			t.Errorf("revision %s has %s", r.Name, appsv1.ControllerRevisionHashLabelKey)
		}
	}
	if want := []string{"web-" + hash + ":1", "web-older:2", st.UpdateRevision + ":3"}; !slices.Equal(got, want) {
		t.Fatalf("revisions %v, want %v", got, want)
	}
}

// waitEvent waits for an event of the set web with reason and message.
func waitEvent(t *testing.T, cs kubernetes.Interface, reason, message string) {
	t.Helper()
	testenv.Poll(t, reason+" event", func() (bool, string) {
		evs, err := cs.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("reason", reason).String()})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Message == message && e.InvolvedObject.Kind == "StatefulSet" && e.InvolvedObject.Name == "web" {
				return true, ""
			}
		}
		return false, fmt.Sprint(len(evs.Items), " events")
	})
}
