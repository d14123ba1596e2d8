package replicaset_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/replicaset"
	"github.com/wasmfleet/wasmfleet/internal/nodesim"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

const ns = "default"

type env struct {
	cluster *testcluster.Cluster
	client  kubernetes.Interface
}

// start runs a control plane, the ReplicaSet and ReplicationController
// controllers (with a client whose transport wrap wraps, when given) and
// a simulated node.
func start(t *testing.T, node nodesim.Options, wrap func(http.RoundTripper) http.RoundTripper) *env {
	t.Helper()
	c := testcluster.Start(t)
	client := c.Client(t)
	cfg := c.RESTConfig(t)
	if wrap != nil {
		cfg = rest.CopyConfig(cfg)
		cfg.WrapTransport = wrap
	}
	ctrlClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactory(ctrlClient, 0)
	ctrls := []*replicaset.Controller{
		replicaset.New(ctrlClient, factory, testLogger(t)),
		replicaset.NewForReplicationControllers(ctrlClient, factory, testLogger(t)),
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, len(ctrls))
	for _, c := range ctrls {
		go func() { done <- c.Run(ctx, 2) }()
	}
	t.Cleanup(func() {
		cancel()
		for range ctrls {
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
		factory.Shutdown()
	})
	nodesim.Start(t, client, node)
	return &env{cluster: c, client: client}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func newRS(name string, replicas int32, image string) *appsv1.ReplicaSet {
	l := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error: %v)", what, lastErr)
}

// activePods are the pods rs controls that are not being deleted.
func activePods(t *testing.T, client kubernetes.Interface, rs *appsv1.ReplicaSet) []corev1.Pod {
	t.Helper()
	list, err := client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == rs.UID && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// waitSettled waits until rs has want ready pods and its status says so
// for its current generation.
func waitSettled(t *testing.T, client kubernetes.Interface, name string, want int32) *appsv1.ReplicaSet {
	t.Helper()
	return waitSettledOf(t, client, "ReplicaSet", name, want)
}

// waitSettledOf is waitSettled for the ReplicaSet or (seen as a
// ReplicaSet, without terminatingReplicas) ReplicationController name.
func waitSettledOf(t *testing.T, client kubernetes.Interface, kind, name string, want int32) *appsv1.ReplicaSet {
	t.Helper()
	var rs *appsv1.ReplicaSet
	waitFor(t, fmt.Sprintf("%s %s to settle at %d", kind, name, want), func() (bool, error) {
		var err error
		if kind == "ReplicaSet" {
			rs, err = client.AppsV1().ReplicaSets(ns).Get(context.Background(), name, metav1.GetOptions{})
		} else {
			var rc *corev1.ReplicationController
			if rc, err = client.CoreV1().ReplicationControllers(ns).Get(context.Background(), name, metav1.GetOptions{}); err == nil {
				rs = replicaset.RCToRS(rc)
			}
		}
		if err != nil {
			return false, err
		}
		st := rs.Status
		if st.ObservedGeneration != rs.Generation || st.Replicas != want || st.ReadyReplicas != want ||
			st.AvailableReplicas != want || st.FullyLabeledReplicas != want ||
			(kind == "ReplicaSet" && ptr.Deref(st.TerminatingReplicas, -1) != 0) {
			return false, fmt.Errorf("status %+v generation %d", st, rs.Generation)
		}
		if n := len(activePods(t, client, rs)); n != int(want) {
			return false, fmt.Errorf("%d active pods", n)
		}
		return true, nil
	})
	return rs
}

// eventReasons counts the events of each reason recorded on the object of
// kind and name.
func eventReasons(t *testing.T, client kubernetes.Interface, kind, name string) map[string]int {
	t.Helper()
	evs, err := client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range evs.Items {
		if e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name {
			out[e.Reason] += int(max(e.Count, 1))
		}
	}
	return out
}

func TestScaleUpAndDownWithKubectl(t *testing.T) {
	e := start(t, nodesim.Options{}, nil)
	ctx := context.Background()
	if _, err := e.client.AppsV1().ReplicaSets(ns).Create(ctx, newRS("web", 3, "hello:1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs := waitSettled(t, e.client, "web", 3)
	for _, p := range activePods(t, e.client, rs) {
		ref := metav1.GetControllerOf(&p)
		if !strings.HasPrefix(p.Name, "web-") || ref.Kind != "ReplicaSet" || ref.APIVersion != "apps/v1" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
			t.Errorf("pod %s owner %+v", p.Name, ref)
		}
	}

	dir := t.TempDir()
	testenv.MustKubectl(t, e.cluster.Kubeconfig(), dir, "", "scale", "rs/web", "--replicas=5")
	waitSettled(t, e.client, "web", 5)
	testenv.MustKubectl(t, e.cluster.Kubeconfig(), dir, "", "scale", "rs/web", "--replicas=1")
	waitSettled(t, e.client, "web", 1)

	waitFor(t, "events", func() (bool, error) {
		r := eventReasons(t, e.client, "ReplicaSet", "web")
		return r[replicaset.EventSuccessfulCreate] == 5 && r[replicaset.EventSuccessfulDelete] == 4, fmt.Errorf("events %v", r)
	})
	out := testenv.MustKubectl(t, e.cluster.Kubeconfig(), dir, "", "get", "rs", "web", "-o", "jsonpath={.status.readyReplicas}/{.status.replicas}")
	if out != "1/1" {
		t.Errorf("kubectl get rs: %q", out)
	}
}

func TestAdoptReleaseAndDeleteOrder(t *testing.T) {
	e := start(t, nodesim.Options{Unready: nodesim.ImageContains("unready")}, nil)
	ctx := context.Background()
	// Two orphans carrying the selector's labels: one that never gets
	// ready, one that does.
	orphan := func(name, image string) {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "adopt"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
		}
		if _, err := e.client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	orphan("orphan-unready", "unready:1")
	orphan("orphan-ready", "hello:1")
	waitFor(t, "orphans running", func() (bool, error) {
		p, err := e.client.CoreV1().Pods(ns).Get(ctx, "orphan-ready", metav1.GetOptions{})
		return err == nil && replicaset.IsPodReady(p), err
	})

	rs, err := e.client.AppsV1().ReplicaSets(ns).Create(ctx, newRS("adopt", 3, "hello:1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "adoption", func() (bool, error) {
		pods := activePods(t, e.client, rs)
		return len(pods) == 3, fmt.Errorf("%d owned pods", len(pods))
	})
	owned := map[string]bool{}
	for _, p := range activePods(t, e.client, rs) {
		owned[p.Name] = true
	}
	if !owned["orphan-unready"] || !owned["orphan-ready"] {
		t.Fatalf("orphans not adopted: %v", owned)
	}
	if n := eventReasons(t, e.client, "ReplicaSet", "adopt")[replicaset.EventSuccessfulCreate]; n > 1 {
		t.Fatalf("created %d pods for 1 missing", n)
	}

	// Scale down by one: the pod that is not ready goes first.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := e.client.AppsV1().ReplicaSets(ns).GetScale(ctx, "adopt", metav1.GetOptions{})
		if err != nil {
			return err
		}
		sc.Spec.Replicas = 2
		_, err = e.client.AppsV1().ReplicaSets(ns).UpdateScale(ctx, "adopt", sc, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rs = waitSettled(t, e.client, "adopt", 2)
	for _, p := range activePods(t, e.client, rs) {
		if p.Name == "orphan-unready" {
			t.Fatal("scale-down kept the not-ready pod")
		}
	}

	// Relabel an owned pod out of the selector: it is released (owner
	// reference removed, pod kept) and replaced.
	patch := []byte(`{"metadata":{"labels":{"app":"elsewhere"}}}`)
	if _, err := e.client.CoreV1().Pods(ns).Patch(ctx, "orphan-ready", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "release", func() (bool, error) {
		p, err := e.client.CoreV1().Pods(ns).Get(ctx, "orphan-ready", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(p.OwnerReferences) == 0, fmt.Errorf("owners %v", p.OwnerReferences)
	})
	waitSettled(t, e.client, "adopt", 2)
}

// TestHandDeletedPodReplacedOnce deletes a pod by hand while the
// ReplicaSet is still creating: exactly one replacement is made.
func TestHandDeletedPodReplacedOnce(t *testing.T) {
	e := start(t, nodesim.Options{}, nil)
	ctx := context.Background()
	w, err := e.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=burst"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := e.client.AppsV1().ReplicaSets(ns).Create(ctx, newRS("burst", 8, "hello:1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	added := map[string]bool{}
	deletedOne := make(chan string, 1)
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type != watch.Added {
				continue
			}
			mu.Lock()
			added[p.Name] = true
			first := len(added) == 1
			mu.Unlock()
			if first {
				// Delete the first pod as soon as it exists: the
				// controller is still in its slow-start batches.
				if err := e.client.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
					t.Errorf("delete by hand: %v", err)
				}
				deletedOne <- p.Name
			}
		}
	}()
	<-deletedOne
	waitSettled(t, e.client, "burst", 8)
	mu.Lock()
	defer mu.Unlock()
	if len(added) != 9 {
		t.Fatalf("%d pods created for 8 replicas and one deleted by hand, want 9", len(added))
	}
}

func TestMinReadySecondsAvailability(t *testing.T) {
	e := start(t, nodesim.Options{}, nil)
	ctx := context.Background()
	rs := newRS("slow", 2, "hello:1")
	rs.Spec.MinReadySeconds = 2
	if _, err := e.client.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Nothing changes after the pods become ready: only the controller's
	// own requeue can make them available.
	waitSettled(t, e.client, "slow", 2)
}

// TestReplicaFailure fails the controller's pod creates (as a quota
// would): the ReplicaSet reports ReplicaFailure/FailedCreate, does not
// burst, and recovers when creates succeed again.
func TestReplicaFailure(t *testing.T) {
	var failing atomic.Bool
	var attempts atomic.Int64
	failing.Store(true)
	wrap := func(rt http.RoundTripper) http.RoundTripper {
		return testenv.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/pods") {
				attempts.Add(1)
				if failing.Load() {
					return testenv.StatusResponse(r, http.StatusForbidden, metav1.StatusReasonForbidden, `pods "quota-" is forbidden: exceeded quota: q`), nil
				}
			}
			return rt.RoundTrip(r)
		})
	}
	e := start(t, nodesim.Options{}, wrap)
	ctx := context.Background()
	if _, err := e.client.AppsV1().ReplicaSets(ns).Create(ctx, newRS("quota", 20, "hello:1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var syncsSeen int64
	waitFor(t, "ReplicaFailure", func() (bool, error) {
		rs, err := e.client.AppsV1().ReplicaSets(ns).Get(ctx, "quota", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue && c.Reason == "FailedCreate" &&
				c.Message == `pods "quota-" is forbidden: exceeded quota: q` {
				syncsSeen = attempts.Load()
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %+v", rs.Status.Conditions)
	})
	// Slow start: each failing sync tries one create, never the 20.
	if syncsSeen >= 20 {
		t.Fatalf("%d create attempts before the failure was reported", syncsSeen)
	}
	waitFor(t, "FailedCreate event", func() (bool, error) {
		r := eventReasons(t, e.client, "ReplicaSet", "quota")
		return r[replicaset.EventFailedCreate] > 0, fmt.Errorf("events %v", r)
	})
	failing.Store(false)
	rs := waitSettled(t, e.client, "quota", 20)
	for _, c := range rs.Status.Conditions {
		if c.Type == appsv1.ReplicaSetReplicaFailure {
			t.Fatalf("ReplicaFailure kept after recovery: %+v", c)
		}
	}
}

// TestOwnedByAnotherNotClaimed: two ReplicaSets with the same selector
// keep their own pods.
func TestOwnedByAnotherNotClaimed(t *testing.T) {
	e := start(t, nodesim.Options{}, nil)
	ctx := context.Background()
	// A pod owned by another ReplicaSet is never claimed, even when it
	// matches.
	a, err := e.client.AppsV1().ReplicaSets(ns).Create(ctx, newRS("shared", 2, "hello:1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitSettled(t, e.client, "shared", 2)
	b := newRS("shared-too", 1, "hello:1")
	b.Spec.Selector.MatchLabels = map[string]string{"app": "shared"}
	b.Spec.Template.Labels = map[string]string{"app": "shared"}
	bb, err := e.client.AppsV1().ReplicaSets(ns).Create(ctx, b, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitSettled(t, e.client, "shared-too", 1)
	if n := len(activePods(t, e.client, a)); n != 2 {
		t.Fatalf("first ReplicaSet has %d pods", n)
	}
	if n := len(activePods(t, e.client, bb)); n != 1 {
		t.Fatalf("second ReplicaSet has %d pods", n)
	}
	all, _ := e.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.Set{"app": "shared"}.String()})
	if len(all.Items) != 3 {
		t.Fatalf("%d pods in total", len(all.Items))
	}
}
