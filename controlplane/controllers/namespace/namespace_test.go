package namespace

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
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

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func fill(t *testing.T, client kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	must[*corev1.Namespace](t)(client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	for _, n := range []string{"a", "b"} {
		must[*corev1.ConfigMap](t)(client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}))
		must[*corev1.Secret](t)(client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: n}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}))
	}
	labels := map[string]string{"app": "web"}
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "hello:1"}}}
	must[*appsv1.Deployment](t)(client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}},
	}, metav1.CreateOptions{}))
	must[*corev1.Pod](t)(client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Labels: labels}, Spec: spec}, metav1.CreateOptions{}))
	holder := "x"
	must[*coordinationv1.Lease](t)(client.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "l"}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}, metav1.CreateOptions{}))
}

func nsGone(client kubernetes.Interface, name string) (bool, error) {
	_, err := client.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

func TestNamespaceDeletion(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	dyn, err := dynamic.NewForConfig(c.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(client, 0)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc := New(client, dyn, factory, Options{FinalizerEstimate: time.Second}, log)
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- nc.Run(ctx, 2) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		factory.Shutdown()
	})
	kubectl := func(args ...string) string {
		t.Helper()
		return testenv.MustKubectl(t, c.Kubeconfig(), t.TempDir(), "", args...)
	}
	bg := context.Background()

	t.Run("content deleted, namespace gone", func(t *testing.T) {
		fill(t, client, "doomed")
		kubectl("delete", "namespace", "doomed") // waits until it is gone
		if gone, err := nsGone(client, "doomed"); !gone {
			t.Fatalf("namespace still there after kubectl returned: %v", err)
		}
		for what, n := range map[string]func() (int, error){
			"configmaps": func() (int, error) {
				l, err := client.CoreV1().ConfigMaps("doomed").List(bg, metav1.ListOptions{})
				return len(l.Items), err
			},
			"secrets": func() (int, error) {
				l, err := client.CoreV1().Secrets("doomed").List(bg, metav1.ListOptions{})
				return len(l.Items), err
			},
			"pods": func() (int, error) {
				l, err := client.CoreV1().Pods("doomed").List(bg, metav1.ListOptions{})
				return len(l.Items), err
			},
			"deployments": func() (int, error) {
				l, err := client.AppsV1().Deployments("doomed").List(bg, metav1.ListOptions{})
				return len(l.Items), err
			},
			"leases": func() (int, error) {
				l, err := client.CoordinationV1().Leases("doomed").List(bg, metav1.ListOptions{})
				return len(l.Items), err
			},
		} {
			if got, err := n(); err != nil || got != 0 {
				t.Errorf("%s left: %d (%v)", what, got, err)
			}
		}
	})

	t.Run("finalizers keep it terminating", func(t *testing.T) {
		fill(t, client, "held")
		must[*corev1.ConfigMap](t)(client.CoreV1().ConfigMaps("held").Create(bg, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "pinned", Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{}))
		kubectl("delete", "namespace", "held", "--wait=false")
		eventually(t, "conditions report the held content", func() (bool, error) {
			ns, err := client.CoreV1().Namespaces().Get(bg, "held", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			fin := findCondition(ns.Status.Conditions, corev1.NamespaceFinalizersRemaining)
			rem := findCondition(ns.Status.Conditions, corev1.NamespaceContentRemaining)
			return ns.Status.Phase == corev1.NamespaceTerminating && fin != nil && fin.Status == corev1.ConditionTrue &&
				fin.Reason == "SomeFinalizersRemain" &&
				fin.Message == "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances" &&
				rem != nil && rem.Message == "Some resources are remaining: configmaps. has 1 resource instances", nil
		})
		out := kubectl("get", "configmaps", "-n", "held", "-o", "name")
		if out != "configmap/pinned\n" {
			t.Errorf("content left besides the pinned configmap: %q", out)
		}
		kubectl("patch", "configmap", "pinned", "-n", "held", "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
		eventually(t, "namespace gone", func() (bool, error) { return nsGone(client, "held") })
	})

	t.Run("pods on a node are deleted gracefully", func(t *testing.T) {
		must[*corev1.Namespace](t)(client.CoreV1().Namespaces().Create(bg, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "graceful"}}, metav1.CreateOptions{}))
		grace := int64(2)
		must[*corev1.Pod](t)(client.CoreV1().Pods("graceful").Create(bg, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "running"},
			Spec: corev1.PodSpec{NodeName: "edge-1", TerminationGracePeriodSeconds: &grace,
				Containers: []corev1.Container{{Name: "app", Image: "hello:1"}}},
		}, metav1.CreateOptions{}))
		kubectl("delete", "namespace", "graceful", "--wait=false")
		eventually(t, "pod deleted gracefully", func() (bool, error) {
			p, err := client.CoreV1().Pods("graceful").Get(bg, "running", metav1.GetOptions{})
			return err == nil && p.DeletionTimestamp != nil && *p.DeletionGracePeriodSeconds == 2, err
		})
		if gone, _ := nsGone(client, "graceful"); gone {
			t.Fatal("namespace gone while its pod is still terminating")
		}
		// The node agent confirms the pod stopped.
		zero := int64(0)
		if err := client.CoreV1().Pods("graceful").Delete(bg, "running", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "namespace gone", func() (bool, error) { return nsGone(client, "graceful") })
	})
}
