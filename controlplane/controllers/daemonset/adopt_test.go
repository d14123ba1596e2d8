package daemonset

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

type countGets struct {
	next http.RoundTripper
	path string
	n    *atomic.Int32
}

func (c countGets) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && r.URL.Path == c.path {
		c.n.Add(1)
	}
	return c.next.RoundTrip(r)
}

// TestAdoptRechecksOnce: claiming several orphans reads the DaemonSet
// live once, as kube's CanAdopt (RecheckDeletionTimestamp once per
// claim), not once per pod.
func TestAdoptRechecksOnce(t *testing.T) {
	c := testcluster.Start(t)
	cs := c.Client(t)
	ctx := context.Background()
	var gets atomic.Int32
	cfg := c.RESTConfig(t)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return countGets{next: rt, path: "/apis/apps/v1/namespaces/" + ns + "/daemonsets/agent", n: &gets}
	})
	counted, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lbls := map[string]string{"app": "agent"}
	ds, err := cs.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("orphan-", i), Namespace: ns, Labels: lbls},
			Spec:       corev1.PodSpec{NodeName: fmt.Sprint("node-", i), Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The controller is not run: podsByNode is called on a synced cache.
	factory := informers.NewSharedInformerFactory(counted, 0)
	ctrl := New(counted, factory, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	stop := make(chan struct{})
	defer func() { close(stop); factory.Shutdown() }()
	factory.Start(stop)
	cache.WaitForCacheSync(stop, ctrl.synced...)
	testenv.Poll(t, "orphans in the cache", func() (bool, string) {
		ps, _ := ctrl.podLister.Pods(ns).List(labels.Everything())
		return len(ps) == 3, fmt.Sprint(len(ps), " pods")
	})
	byNode, err := ctrl.podsByNode(ctx, ds, labels.SelectorFromSet(lbls))
	if err != nil {
		t.Fatal(err)
	}
	if len(byNode) != 3 || gets.Load() != 1 {
		t.Fatalf("claimed on %d nodes with %d live reads of the DaemonSet, want 3 and 1", len(byNode), gets.Load())
	}
	for i := range 3 {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, fmt.Sprint("orphan-", i), metav1.GetOptions{})
		if err != nil || !metav1.IsControlledBy(p, ds) {
			t.Fatalf("orphan-%d not adopted: %v", i, err)
		}
	}
}
