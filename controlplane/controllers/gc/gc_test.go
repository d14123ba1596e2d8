package gc

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"

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

type env struct {
	t          *testing.T
	client     kubernetes.Interface
	kubeconfig string
	ns         string
}

func (e *env) kubectl(args ...string) string {
	e.t.Helper()
	return testenv.MustKubectl(e.t, e.kubeconfig, e.t.TempDir(), "", append(args, "-n", e.ns)...)
}

// cm creates a ConfigMap owned by owners (blockOwnerDeletion as given) and
// with finalizers.
func (e *env) cm(name string, block bool, finalizers []string, owners ...metav1.Object) *corev1.ConfigMap {
	e.t.Helper()
	var refs []metav1.OwnerReference
	for _, o := range owners {
		b := block
		refs = append(refs, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: o.GetName(), UID: o.GetUID(), BlockOwnerDeletion: &b})
	}
	cm, err := e.client.CoreV1().ConfigMaps(e.ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: refs, Finalizers: finalizers},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return cm
}

func (e *env) cmExists(name string) (bool, *corev1.ConfigMap) {
	e.t.Helper()
	cm, err := e.client.CoreV1().ConfigMaps(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return true, cm
}

func (e *env) waitGone(names ...string) {
	e.t.Helper()
	for _, n := range names {
		eventually(e.t, "configmap "+n+" gone", func() (bool, error) { ok, _ := e.cmExists(n); return !ok, nil })
	}
}

// rs creates a ReplicaSet and n pods it controls (unbound: no scheduler
// runs, so their deletion is immediate).
func (e *env) rs(name string, n int) *appsv1.ReplicaSet {
	e.t.Helper()
	labels := map[string]string{"app": name}
	rs, err := e.client.AppsV1().ReplicaSets(e.ns).Create(context.Background(), &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.ReplicaSetSpec{Replicas: new(int32(n)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels)},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.ownedPods(name, n, metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet")))
	return rs
}

// rc creates a ReplicationController and n pods it controls, as rs.
func (e *env) rc(name string, n int) *corev1.ReplicationController {
	e.t.Helper()
	labels := map[string]string{"app": name}
	t := podTemplate(labels)
	rc, err := e.client.CoreV1().ReplicationControllers(e.ns).Create(context.Background(), &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ReplicationControllerSpec{Replicas: new(int32(n)), Selector: labels, Template: &t},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.ownedPods(name, n, metav1.NewControllerRef(rc, corev1.SchemeGroupVersion.WithKind("ReplicationController")))
	return rc
}

// podTemplate is the template of rs's and rc's objects.
func podTemplate(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "hello:1"}}}}
}

// ownedPods creates n pods labelled app=name that owner controls.
func (e *env) ownedPods(name string, n int, owner *metav1.OwnerReference) {
	e.t.Helper()
	t := podTemplate(map[string]string{"app": name})
	for i := range n {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-" + string(rune('a'+i)), Labels: t.Labels,
				OwnerReferences: []metav1.OwnerReference{*owner}},
			Spec: t.Spec,
		}
		if _, err := e.client.CoreV1().Pods(e.ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) pods(app string) []corev1.Pod {
	e.t.Helper()
	l, err := e.client.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		e.t.Fatal(err)
	}
	return l.Items
}

func TestGarbageCollector(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	mc, err := metadata.NewForConfig(c.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gc := New(client, mc, Options{}, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gc.Run(ctx, 2) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	newEnv := func(t *testing.T, ns string) *env {
		if _, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return &env{t: t, client: client, kubeconfig: c.Kubeconfig(), ns: ns}
	}

	t.Run("background", func(t *testing.T) {
		e := newEnv(t, "bg")
		e.rs("web", 3)
		e.kubectl("delete", "replicaset", "web", "--cascade=background")
		eventually(t, "pods collected", func() (bool, error) { return len(e.pods("web")) == 0, nil })
	})

	t.Run("foreground", func(t *testing.T) {
		e := newEnv(t, "fg")
		e.rs("web", 2)
		// kubectl waits until the owner is gone, which needs its pods gone.
		e.kubectl("delete", "replicaset", "web", "--cascade=foreground")
		if p := e.pods("web"); len(p) != 0 {
			t.Errorf("owner gone before its dependents: %d pods left", len(p))
		}

		// A blocking dependent that cannot go yet holds the owner.
		owner := e.cm("owner", false, nil)
		e.cm("held", true, []string{"example.com/hold"}, owner)
		e.cm("loose", false, nil, owner)
		e.kubectl("delete", "configmap", "owner", "--cascade=foreground", "--wait=false")
		eventually(t, "held being deleted, loose gone", func() (bool, error) {
			_, held := e.cmExists("held")
			loose, _ := e.cmExists("loose")
			return held.DeletionTimestamp != nil && !loose, nil
		})
		ok, o := e.cmExists("owner")
		if !ok || o.DeletionTimestamp == nil || !hasFinalizer(o, metav1.FinalizerDeleteDependents) {
			t.Fatalf("owner should wait for its blocking dependent: %+v", o)
		}
		e.kubectl("patch", "configmap", "held", "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
		e.waitGone("held", "owner")
	})

	t.Run("replication controller", func(t *testing.T) {
		e := newEnv(t, "rc")
		e.rc("web", 2)
		e.kubectl("delete", "rc", "web", "--cascade=foreground")
		if p := e.pods("web"); len(p) != 0 {
			t.Errorf("owner gone before its dependents: %d pods left", len(p))
		}
	})

	t.Run("orphan", func(t *testing.T) {
		e := newEnv(t, "orphan")
		e.rs("web", 2)
		e.kubectl("delete", "replicaset", "web", "--cascade=orphan")
		if _, err := client.AppsV1().ReplicaSets(e.ns).Get(context.Background(), "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("replicaset still there: %v", err)
		}
		pods := e.pods("web")
		if len(pods) != 2 {
			t.Fatalf("orphaned pods deleted: %d left", len(pods))
		}
		for _, p := range pods {
			if len(p.OwnerReferences) != 0 {
				t.Errorf("pod %s still references its owner: %+v", p.Name, p.OwnerReferences)
			}
		}
		// And they stay.
		time.Sleep(time.Second)
		if len(e.pods("web")) != 2 {
			t.Error("orphans collected later")
		}
	})

	t.Run("chains", func(t *testing.T) {
		e := newEnv(t, "chains")
		a := e.cm("a", true, nil)
		b := e.cm("b", true, nil, a)
		e.cm("c", true, nil, b)
		e.kubectl("delete", "configmap", "a")
		e.waitGone("b", "c")

		x := e.cm("x", true, nil)
		y := e.cm("y", true, nil, x)
		e.cm("z", true, nil, y)
		e.kubectl("delete", "configmap", "x", "--cascade=foreground")
		for _, n := range []string{"y", "z"} {
			if ok, _ := e.cmExists(n); ok {
				t.Errorf("foreground owner gone before %s", n)
			}
		}
	})

	t.Run("two owners", func(t *testing.T) {
		e := newEnv(t, "two")
		o1 := e.cm("o1", false, nil)
		o2 := e.cm("o2", false, nil)
		e.cm("shared", false, nil, o1, o2)
		e.kubectl("delete", "configmap", "o1")
		eventually(t, "reference to o1 dropped", func() (bool, error) {
			ok, cm := e.cmExists("shared")
			if !ok {
				t.Fatal("dependent with a live owner collected")
			}
			return len(cm.OwnerReferences) == 1 && cm.OwnerReferences[0].UID == o2.UID, nil
		})
		e.kubectl("delete", "configmap", "o2")
		e.waitGone("shared")
	})

	t.Run("dangling from the start", func(t *testing.T) {
		e := newEnv(t, "dangling")
		ghost := &metav1.ObjectMeta{Name: "ghost", UID: types.UID("00000000-0000-0000-0000-000000000001")}
		e.cm("orphaned", false, nil, ghost)
		// Same name as the reference but another UID: still dangling.
		e.cm("ghost", false, nil)
		e.cm("keeper", false, nil)
		e.waitGone("orphaned")
		if ok, _ := e.cmExists("keeper"); !ok {
			t.Error("object without owners collected")
		}
	})
}
