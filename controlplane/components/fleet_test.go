package components_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/controlplane/components"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/nodeagent"
)

// startNode runs a real node agent for name with labels until the test
// ends or the returned stop is called (the device goes offline: its lease
// stops, its guests stop with it).
func startNode(t *testing.T, cp *testcluster.Cluster, name string, labels map[string]string) (stop func()) {
	t.Helper()
	cfg := nodeagent.Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName, cfg.DataDir = cp.URL, cp.NodeToken(), name, t.TempDir()
	cfg.Labels, cfg.AllowFileModules = labels, true
	cfg.LeaseRenewInterval, cfg.LeaseDuration = 500*time.Millisecond, 5*time.Second
	a, err := nodeagent.NewAgent(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent %s: %v", name, err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

func podsOf(t *testing.T, client kubernetes.Interface, selector string) []corev1.Pod {
	t.Helper()
	l, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// dumpState logs the pods and nodes, for a failed test.
func dumpState(t *testing.T, client kubernetes.Interface) {
	pods, err := client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Logf("list pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		t.Logf("pod %s node=%q phase=%s deleting=%v conditions=%+v containers=%+v",
			p.Name, p.Spec.NodeName, p.Status.Phase, p.DeletionTimestamp != nil, p.Status.Conditions, p.Status.ContainerStatuses)
	}
	nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Logf("list nodes: %v", err)
		return
	}
	for _, n := range nodes.Items {
		t.Logf("node %s taints=%+v conditions=%+v", n.Name, n.Spec.Taints, n.Status.Conditions)
	}
}

// readyStatus is the status of n's Ready condition, "" without one.
func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

func runningOn(pods []corev1.Pod) map[string]int {
	on := map[string]int{}
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			on[p.Spec.NodeName]++
		}
	}
	return on
}

// TestFleet is the whole control plane (API server, scheduler, controller
// manager in the server) with three real node agents: a Deployment spreads
// and runs, a DaemonSet runs on the matching devices only; a device goes
// offline: its node turns Unknown and tainted, the Deployment's pod is
// replaced on another device after its toleration, the DaemonSet's pod is
// not moved.
func TestFleet(t *testing.T) {
	cfg := testcluster.Config(t, t.TempDir())
	cfg.NodeMonitorGracePeriod = 3 * time.Second
	cfg.DefaultTolerationSeconds = 2
	cfg.LeaderElectLeaseDuration, cfg.LeaderElectRenewDeadline, cfg.LeaderElectRetryPeriod = 3*time.Second, 2*time.Second, 250*time.Millisecond
	cfg.Components = components.For(cfg)
	cp := testcluster.StartWith(t, cfg)
	client := cp.Client(t)
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			dumpState(t, client)
		}
	})

	stopA := startNode(t, cp, "edge-a", map[string]string{"site": "north", "hw": "pi4"})
	startNode(t, cp, "edge-b", map[string]string{"site": "north", "hw": "nuc"})
	startNode(t, cp, "edge-c", map[string]string{"site": "south", "hw": "pi4"})
	// The spread is over the devices the scheduler knows when it places
	// the pods: all three must have joined first.
	eventually(t, "three devices Ready", 60*time.Second, func() bool {
		for _, name := range []string{"edge-a", "edge-b", "edge-c"} {
			n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil || readyStatus(n) != corev1.ConditionTrue {
				return false
			}
		}
		return true
	})

	tiny, _ := filepath.Abs("../../examples/tiny/tiny.wasm")
	template := func(app string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{
				RuntimeClassName:              ptrTo("wasm"),
				TerminationGracePeriodSeconds: ptrTo(int64(1)),
				Containers:                    []corev1.Container{{Name: "main", Image: "file://" + tiny}},
			},
		}
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptrTo(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template("web"),
		},
	}
	// One per device; devices tainted unreachable leave the spread
	// (nodeTaintsPolicy Honor), so a replacement may go to the others.
	dep.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.DoNotSchedule,
		LabelSelector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		NodeTaintsPolicy: ptrTo(corev1.NodeInclusionPolicyHonor),
	}}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "sensor"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sensor"}},
			Template: template("sensor"),
		},
	}
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"hw": "pi4"}
	if _, err := client.AppsV1().DaemonSets("default").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	eventually(t, "web: one Running pod on each device", 90*time.Second, func() bool {
		on := runningOn(podsOf(t, client, "app=web"))
		return len(on) == 3 && on["edge-a"] == 1 && on["edge-b"] == 1 && on["edge-c"] == 1
	})
	eventually(t, "sensor: Running on the pi4 devices only", 60*time.Second, func() bool {
		on := runningOn(podsOf(t, client, "app=sensor"))
		return len(on) == 2 && on["edge-a"] == 1 && on["edge-c"] == 1
	})
	eventually(t, "deployment available", 30*time.Second, func() bool {
		d, err := client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas == 3 && d.Status.UpdatedReplicas == 3
	})
	var sensorOnA string
	for _, p := range podsOf(t, client, "app=sensor") {
		if p.Spec.NodeName == "edge-a" {
			sensorOnA = p.Name
		}
	}

	// edge-a goes offline.
	stopA()
	eventually(t, "edge-a Unknown and tainted unreachable", 60*time.Second, func() bool {
		n, err := client.CoreV1().Nodes().Get(ctx, "edge-a", metav1.GetOptions{})
		if err != nil {
			return false
		}
		tainted := false
		for _, tt := range n.Spec.Taints {
			tainted = tainted || (tt.Key == corev1.TaintNodeUnreachable && tt.Effect == corev1.TaintEffectNoExecute)
		}
		return readyStatus(n) == corev1.ConditionUnknown && tainted
	})
	eventually(t, "web: 3 Running pods again, none on edge-a", 90*time.Second, func() bool {
		on := runningOn(podsOf(t, client, "app=web"))
		return on["edge-a"] == 0 && on["edge-b"]+on["edge-c"] == 3
	})
	p, err := client.CoreV1().Pods("default").Get(ctx, sensorOnA, metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp != nil || p.Spec.NodeName != "edge-a" {
		t.Fatalf("the DaemonSet pod on the offline device was touched: %v %+v", err, p.ObjectMeta)
	}
	if n := len(podsOf(t, client, "app=sensor")); n != 2 {
		t.Errorf("%d sensor pods, want 2 (no replacement elsewhere)", n)
	}
}
