package components_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/internal/nodesim"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// livePods watches pods with selector and records the most that were ever
// alive (not terminating) at once.
type livePods struct {
	mu   sync.Mutex
	live map[string]bool
	max  int
	stop func()
	done chan struct{}
}

func watchLive(t *testing.T, client kubernetes.Interface, selector string) *livePods {
	t.Helper()
	w, err := client.CoreV1().Pods("default").Watch(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	lp := &livePods{live: map[string]bool{}, stop: w.Stop, done: make(chan struct{})}
	go func() {
		defer close(lp.done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			lp.mu.Lock()
			if ev.Type == watch.Deleted || p.DeletionTimestamp != nil {
				delete(lp.live, p.Name)
			} else {
				lp.live[p.Name] = true
			}
			lp.max = max(lp.max, len(lp.live))
			lp.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.Stop(); <-lp.done })
	return lp
}

func (lp *livePods) peak() int {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.max
}

// TestControllerManagerKilledMidRollout: a rolling update is under way when
// the controller manager is SIGKILLed; a new one takes over once the Lease
// expires and the rollout completes with exactly the desired pods, never
// more than replicas+maxSurge alive.
func TestControllerManagerKilledMidRollout(t *testing.T) {
	bin := testenv.Wasmfleet(t)
	cp := testcluster.Start(t)
	client := cp.Client(t)
	ctx := context.Background()
	nodesim.Start(t, client, nodesim.Options{NodeName: "sim-1"}) // binds and runs every pod

	const replicas, surge = 12, 2
	labels := map[string]string{"app": "roll"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "roll"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptrTo(int32(replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptrTo(intstr.FromInt32(surge)), MaxUnavailable: ptrTo(intstr.FromInt32(0))}},
			MinReadySeconds: 1, // slows the rollout down enough to kill it midway
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}}},
		},
	}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first := startCandidate(t, bin, "controller-manager", cp.Kubeconfig())
	rolledOut := func(image string) func() bool {
		return func() bool {
			d, err := client.AppsV1().Deployments("default").Get(ctx, "roll", metav1.GetOptions{})
			return err == nil && d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == replicas &&
				d.Status.AvailableReplicas == replicas && d.Status.Replicas == replicas && d.Spec.Template.Spec.Containers[0].Image == image
		}
	}
	eventually(t, "v1 available", 90*time.Second, rolledOut("hello:v1"))

	live := watchLive(t, client, "app=roll")
	d, err := client.AppsV1().Deployments("default").Get(ctx, "roll", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "hello:v2"
	if _, err := client.AppsV1().Deployments("default").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rollout under way", 60*time.Second, func() bool {
		d, err := client.AppsV1().Deployments("default").Get(ctx, "roll", metav1.GetOptions{})
		return err == nil && d.Status.UpdatedReplicas >= 2 && d.Status.UpdatedReplicas < replicas
	})
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	startCandidate(t, bin, "controller-manager", cp.Kubeconfig())
	eventually(t, "v2 rolled out by the new controller manager", 120*time.Second, rolledOut("hello:v2"))

	pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=roll"})
	if err != nil {
		t.Fatal(err)
	}
	alive := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			alive++
			if img := p.Spec.Containers[0].Image; img != "hello:v2" {
				t.Errorf("pod %s still runs %s", p.Name, img)
			}
		}
	}
	if alive != replicas {
		t.Errorf("%d pods alive after the rollout, want %d", alive, replicas)
	}
	if peak := live.peak(); peak > replicas+surge {
		t.Errorf("%d pods alive at once during the rollout, want at most %d", peak, replicas+surge)
	}
}

// TestSchedulerKilledMidway: the scheduler is SIGKILLed while binding a
// batch of pods; a new one binds the rest, every pod ends bound, and no
// node holds more pods than it allows.
func TestSchedulerKilledMidway(t *testing.T) {
	bin := testenv.Wasmfleet(t)
	cp := testcluster.Start(t)
	client := cp.Client(t)
	ctx := context.Background()
	const nodes, perNode, pods = 4, 80, 300
	for i := range nodes {
		readyNode(t, client, fmt.Sprintf("edge-%d", i), perNode)
	}
	bound := func() (n int, per map[string]int) {
		per = map[string]int{}
		l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "batch=1"})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Items {
			if p.Spec.NodeName != "" {
				n++
				per[p.Spec.NodeName]++
			}
		}
		return n, per
	}
	first := startCandidate(t, bin, "scheduler", cp.Kubeconfig())
	// Pods keep arriving one by one while the scheduler is killed.
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range pods {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%03d", i), Labels: map[string]string{"batch": "1"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}}}
			if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	eventually(t, "some pods bound", 60*time.Second, func() bool { n, _ := bound(); return n >= 20 })
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	n, _ := bound()
	t.Logf("the first scheduler bound %d of %d pods before it was killed", n, pods)
	startCandidate(t, bin, "scheduler", cp.Kubeconfig())
	wg.Wait()
	eventually(t, "all pods bound", 120*time.Second, func() bool { n, _ := bound(); return n == pods })
	_, per := bound()
	for node, n := range per {
		if n > perNode {
			t.Errorf("%s holds %d pods, allows %d", node, n, perNode)
		}
	}
}
