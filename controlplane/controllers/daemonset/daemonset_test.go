package daemonset

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

const ns = "default"

// startController runs a control plane with this controller and a test
// node agent (pods get ready after readyAfter).
func startController(t *testing.T, readyAfter time.Duration) (*testcluster.Cluster, kubernetes.Interface) {
	t.Helper()
	c := testcluster.Start(t)
	cs := c.Client(t)
	factory := informers.NewSharedInformerFactory(cs, 0)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctrl := New(cs, factory, log)
	if ctrl.Name() != Name {
		t.Fatalf("Name() = %q", ctrl.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx, 2) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		factory.Shutdown()
	})
	startAgent(t, cs, func(*corev1.Pod) agentPlan { return agentPlan{ReadyAfter: readyAfter} })
	return c, cs
}

func wasmNode(name string, labels map[string]string, taints ...corev1.Taint) *corev1.Node {
	l := map[string]string{RuntimeClassLabelPrefix + "wasm": "true", "kubernetes.io/hostname": name}
	for k, v := range labels {
		l[k] = v
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}, Spec: corev1.NodeSpec{Taints: taints}}
}

func createNodes(t *testing.T, cs kubernetes.Interface, nodes ...*corev1.Node) {
	t.Helper()
	for _, n := range nodes {
		if _, err := cs.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create node %s: %v", n.Name, err)
		}
	}
}

func newDaemonSet(name string, nodeSelector map[string]string) *appsv1.DaemonSet {
	labels := map[string]string{"app": name}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: nodeSelector,
					Containers:   []corev1.Container{{Name: "agent", Image: "hello:1"}},
				},
			},
		},
	}
}

// dsPods lists the live pods of ds by node (terminating ones included).
func dsPods(t *testing.T, cs kubernetes.Interface, ds string) map[string][]corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + ds})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]corev1.Pod{}
	for _, p := range list.Items {
		out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p)
	}
	return out
}

func nodeNames(m map[string][]corev1.Pod) string {
	var names []string
	for n, ps := range m {
		names = append(names, fmt.Sprintf("%s(%d)", n, len(ps)))
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// waitPlacement waits until ds has exactly one pod on each of want and none
// elsewhere.
func waitPlacement(t *testing.T, cs kubernetes.Interface, ds string, want ...string) {
	t.Helper()
	sort.Strings(want)
	exp := make([]string, len(want))
	for i, n := range want {
		exp[i] = n + "(1)"
	}
	testenv.Poll(t, "pods on "+strings.Join(want, ","), func() (bool, string) {
		got := nodeNames(dsPods(t, cs, ds))
		return got == strings.Join(exp, ","), got
	})
}

func TestPlacementFollowsNodes(t *testing.T) {
	_, cs := startController(t, 0)
	ctx := context.Background()
	edge := map[string]string{"role": "edge"}
	runcOnly := wasmNode("runc-only", edge)
	delete(runcOnly.Labels, RuntimeClassLabelPrefix+"wasm")
	runcOnly.Labels[RuntimeClassLabelPrefix+"runc"] = "true"
	unsched := wasmNode("cordoned", edge, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	unsched.Spec.Unschedulable = true
	createNodes(t, cs,
		wasmNode("plain", edge),
		wasmNode("tainted", edge, corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}),
		wasmNode("core", map[string]string{"role": "core"}),
		wasmNode("unreachable", edge, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}),
		runcOnly,
		unsched,
	)
	if _, err := cs.AppsV1().DaemonSets(ns).Create(ctx, newDaemonSet("logs", edge), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPlacement(t, cs, "logs", "cordoned", "plain", "unreachable")

	pods := dsPods(t, cs, "logs")
	p := pods["plain"][0]
	if p.Labels[RevisionHashLabel] == "" {
		t.Errorf("pod has no %s label: %v", RevisionHashLabel, p.Labels)
	}
	if ref := metav1.GetControllerOf(&p); ref == nil || ref.Kind != "DaemonSet" || ref.Name != "logs" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Errorf("controller ref = %+v", ref)
	}
	for _, want := range []corev1.Toleration{
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	} {
		found := false
		for _, tol := range p.Spec.Tolerations {
			if tol.Key == want.Key && tol.Effect == want.Effect && tol.Operator == want.Operator && tol.TolerationSeconds == nil {
				found = true
			}
		}
		if !found {
			t.Errorf("pod lacks toleration %+v (has %+v)", want, p.Spec.Tolerations)
		}
	}
	testenv.Poll(t, "status", func() (bool, string) {
		ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "logs", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := ds.Status
		return st.ObservedGeneration == ds.Generation && st.DesiredNumberScheduled == 3 && st.CurrentNumberScheduled == 3 &&
			st.NumberReady == 3 && st.NumberAvailable == 3 && st.UpdatedNumberScheduled == 3 && st.NumberUnavailable == 0 &&
			st.NumberMisscheduled == 0, fmt.Sprintf("%+v", st)
	})

	// A node that starts matching gets a pod; one that stops matching loses it.
	setLabel := func(node, key, value string) {
		t.Helper()
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, key, value)
		if _, err := cs.CoreV1().Nodes().Patch(ctx, node, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setLabel("core", "role", "edge")
	setLabel("plain", "role", "core")
	waitPlacement(t, cs, "logs", "cordoned", "core", "unreachable")

	// A deleted node's pod goes away.
	if err := cs.CoreV1().Nodes().Delete(ctx, "unreachable", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPlacement(t, cs, "logs", "cordoned", "core")

	// A NoExecute taint the pod does not tolerate evicts it; a new node gets one.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := cs.CoreV1().Nodes().Get(ctx, "cordoned", metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "maintenance", Effect: corev1.TaintEffectNoExecute})
		_, err = cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	createNodes(t, cs, wasmNode("late", edge))
	waitPlacement(t, cs, "logs", "core", "late")

	testenv.Poll(t, "events", func() (bool, string) {
		evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		reasons := map[string]bool{}
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "DaemonSet" && e.InvolvedObject.Name == "logs" && e.Source.Component == Name {
				reasons[e.Reason] = true
			}
		}
		return reasons[reasonSuccessfulCreate] && reasons[reasonSuccessfulDelete], fmt.Sprint(reasons)
	})
}

func TestRuntimeClassPlacement(t *testing.T) {
	_, cs := startController(t, 0)
	ctx := context.Background()
	runc := wasmNode("runc", nil)
	runc.Labels[RuntimeClassLabelPrefix+"runc"] = "true"
	createNodes(t, cs, wasmNode("wasm-only", nil), runc)
	ds := newDaemonSet("oci", nil)
	ds.Spec.Template.Spec.RuntimeClassName = new("runc")
	if _, err := cs.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().DaemonSets(ns).Create(ctx, newDaemonSet("wasm", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPlacement(t, cs, "oci", "runc")
	waitPlacement(t, cs, "wasm", "runc", "wasm-only")
}

// availability watches ds's pods and records, after every pod event once
// its informer has synced, how many of the nodes lack an available (ready,
// not terminating) pod of the current or any template. Events of the
// initial list come before the informer's store holds every pod, so they
// are not counted; the synced store is, once.
type availability struct {
	mu       sync.Mutex
	maxUnav  int
	nodes    []string
	observed int
	synced   bool
}

func watchAvailability(t *testing.T, cs kubernetes.Interface, ds string, nodes []string) *availability {
	t.Helper()
	a := &availability{nodes: nodes}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "app=" + ds }))
	inf := factory.Core().V1().Pods().Informer()
	check := func(any) {
		avail := map[string]bool{}
		for _, obj := range inf.GetStore().List() {
			p := obj.(*corev1.Pod)
			if p.DeletionTimestamp == nil && isPodReady(p) {
				avail[p.Spec.NodeName] = true
			}
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if !a.synced {
			return
		}
		a.observed++
		a.maxUnav = max(a.maxUnav, len(a.nodes)-len(avail))
	}
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    check,
		UpdateFunc: func(_, cur any) { check(cur) },
		DeleteFunc: check,
	})
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("availability watch did not sync")
	}
	a.mu.Lock()
	a.synced = true
	a.mu.Unlock()
	check(nil)
	return a
}

func (a *availability) max() (int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.maxUnav, a.observed
}

// setImage changes ds's image, retrying on conflicts with the controller's
// status writes.
func setImage(t *testing.T, cs kubernetes.Interface, ds, image string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := cs.AppsV1().DaemonSets(ns).Get(context.Background(), ds, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec.Template.Spec.Containers[0].Image = image
		_, err = cs.AppsV1().DaemonSets(ns).Update(context.Background(), cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRollingUpdate(t *testing.T) {
	c, cs := startController(t, 150*time.Millisecond)
	ctx := context.Background()
	nodes := []string{"a", "b", "c", "d", "e"}
	for _, n := range nodes {
		createNodes(t, cs, wasmNode(n, nil))
	}
	ds := newDaemonSet("proxy", nil)
	if _, err := cs.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	testenv.MustKubectl(t, c.Kubeconfig(), dir, "", "-n", ns, "rollout", "status", "ds/proxy", "--timeout=60s")
	waitPlacement(t, cs, "proxy", nodes...)
	// rollout status may have seen a status written before the
	// controller's node informer had the nodes (0 of 0 desired); wait for
	// all five pods available.
	testenv.Poll(t, "status", func() (bool, string) {
		got, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "proxy", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := got.Status
		return st.ObservedGeneration == got.Generation && st.DesiredNumberScheduled == 5 && st.NumberAvailable == 5, fmt.Sprintf("%+v", st)
	})
	oldHash := dsPods(t, cs, "proxy")["a"][0].Labels[RevisionHashLabel]
	// As Kubernetes' controller, the pods carry the DaemonSet's template
	// generation, which the API server sets.
	if g := dsPods(t, cs, "proxy")["a"][0].Labels[TemplateGenerationLabel]; g != "1" {
		t.Errorf("first pods' %s label %q, want 1", TemplateGenerationLabel, g)
	}

	av := watchAvailability(t, cs, "proxy", nodes)
	if m, _ := av.max(); m != 0 {
		t.Fatalf("%d nodes unavailable before the update", m)
	}
	setImage(t, cs, "proxy", "hello:2")
	out := testenv.MustKubectl(t, c.Kubeconfig(), dir, "", "-n", ns, "rollout", "status", "ds/proxy", "--timeout=60s")
	if !strings.Contains(out, "successfully rolled out") {
		t.Errorf("rollout status said: %s", out)
	}
	pods := dsPods(t, cs, "proxy")
	for _, n := range nodes {
		if len(pods[n]) != 1 {
			t.Fatalf("node %s has %d pods after the rollout", n, len(pods[n]))
		}
		p := pods[n][0]
		if p.Spec.Containers[0].Image != "hello:2" || p.Labels[RevisionHashLabel] == oldHash || p.Labels[TemplateGenerationLabel] != "2" || p.DeletionTimestamp != nil {
			t.Errorf("node %s: pod %s image %s hash %s (old %s) template generation %q", n, p.Name, p.Spec.Containers[0].Image, p.Labels[RevisionHashLabel], oldHash, p.Labels[TemplateGenerationLabel])
		}
	}
	m, observed := av.max()
	if m > 1 {
		t.Errorf("up to %d nodes were unavailable during the update; maxUnavailable is 1", m)
	}
	if m < 1 || observed < 3*len(nodes) {
		t.Errorf("watch saw %d events and at most %d unavailable nodes: did the update replace pods?", observed, m)
	}
	got, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := got.Status; st.UpdatedNumberScheduled != 5 || st.NumberAvailable != 5 || st.ObservedGeneration != got.Generation {
		t.Errorf("status after rollout: %+v", st)
	}

	// kubectl rollout history and undo read the ControllerRevisions: the
	// undone template's revision becomes the newest.
	if out := testenv.MustKubectl(t, c.Kubeconfig(), dir, "", "-n", ns, "rollout", "history", "ds/proxy"); !regexp.MustCompile(`(?m)^1 .*\n2 `).MatchString(out) {
		t.Errorf("rollout history: %s", out)
	}
	testenv.MustKubectl(t, c.Kubeconfig(), dir, "", "-n", ns, "rollout", "undo", "ds/proxy")
	testenv.MustKubectl(t, c.Kubeconfig(), dir, "", "-n", ns, "rollout", "status", "ds/proxy", "--timeout=60s")
	for n, ps := range dsPods(t, cs, "proxy") {
		if len(ps) != 1 || ps[0].Labels[RevisionHashLabel] != oldHash || ps[0].Labels[TemplateGenerationLabel] != "3" {
			t.Errorf("node %s after undo: %d pods, want one of the first template, of template generation 3", n, len(ps))
		}
	}
	if out := testenv.MustKubectl(t, c.Kubeconfig(), dir, "", "-n", ns, "rollout", "history", "ds/proxy"); !regexp.MustCompile(`(?m)^2 .*\n3 `).MatchString(out) {
		t.Errorf("rollout history after undo: %s", out)
	}
}

func TestOnDeleteWaitsForDeletion(t *testing.T) {
	_, cs := startController(t, 0)
	ctx := context.Background()
	createNodes(t, cs, wasmNode("a", nil), wasmNode("b", nil))
	ds := newDaemonSet("manual", nil)
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	if _, err := cs.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPlacement(t, cs, "manual", "a", "b")
	setImage(t, cs, "manual", "hello:2")
	// The controller has seen the new generation once it reports it.
	testenv.Poll(t, "observedGeneration", func() (bool, string) {
		got, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "manual", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return got.Status.ObservedGeneration == got.Generation && got.Status.UpdatedNumberScheduled == 0, fmt.Sprintf("%+v", got.Status)
	})
	old := dsPods(t, cs, "manual")["a"][0]
	if err := cs.CoreV1().Pods(ns).Delete(ctx, old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, "a replaced", func() (bool, string) {
		pods := dsPods(t, cs, "manual")
		if len(pods["a"]) != 1 || pods["a"][0].UID == old.UID {
			return false, nodeNames(pods)
		}
		return pods["a"][0].Spec.Containers[0].Image == "hello:2", pods["a"][0].Spec.Containers[0].Image
	})
	if b := dsPods(t, cs, "manual")["b"]; len(b) != 1 || b[0].Spec.Containers[0].Image != "hello:1" {
		t.Errorf("OnDelete replaced the pod on b: %+v", b)
	}
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, old.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("old pod still there: %v", err)
	}
}
