// Package nodesim plays scheduler and node for controller tests that run
// without either: every new pod is bound to one node through the Binding
// subresource, then reported Running (Ready, or left not ready when the
// test asks), and a pod being deleted is removed with grace period 0 as a
// kubelet does once its containers have stopped.
//
// It only talks to the API (a real control plane from internal/testcluster)
// and is meant for tests; a Node runs until its test ends.
package nodesim

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
)

// Options configure a Node.
type Options struct {
	// NodeName is where pods are bound ("sim-node" if empty).
	NodeName string
	// Namespace limits the node to one namespace (all if empty).
	Namespace string
	// Unready, when set, says which pods to leave Running but not ready.
	Unready func(*corev1.Pod) bool
}

// ImageContains is an Unready predicate: pods with a container whose image
// contains s stay not ready.
func ImageContains(s string) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool {
		for _, c := range p.Spec.Containers {
			if strings.Contains(c.Image, s) {
				return true
			}
		}
		return false
	}
}

// Node is a running simulated node.
type Node struct {
	client kubernetes.Interface
	name   string
	opts   Options
	lister corelisters.PodLister
	queue  workqueue.TypedRateLimitingInterface[string]
}

// Start runs a simulated node against client until t ends.
func Start(t testing.TB, client kubernetes.Interface, opts Options) *Node {
	t.Helper()
	if opts.NodeName == "" {
		opts.NodeName = "sim-node"
	}
	var fopts []informers.SharedInformerOption
	if opts.Namespace != "" {
		fopts = append(fopts, informers.WithNamespace(opts.Namespace))
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, fopts...)
	inf := factory.Core().V1().Pods()
	n := &Node{
		client: client,
		name:   opts.NodeName,
		opts:   opts,
		lister: inf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](
			5*time.Millisecond, time.Second)),
	}
	enqueue := func(obj any) {
		if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			n.queue.Add(k)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, cur any) { enqueue(cur) },
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		n.queue.ShutDown()
		wg.Wait()
		factory.Shutdown()
	})
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		t.Fatal("nodesim: pod cache did not sync")
	}
	for range 2 {
		wg.Go(func() {
			for n.next(ctx) {
			}
		})
	}
	return n
}

// Name is the node's name.
func (n *Node) Name() string { return n.name }

func (n *Node) next(ctx context.Context) bool {
	k, quit := n.queue.Get()
	if quit {
		return false
	}
	defer n.queue.Done(k)
	if err := n.handle(ctx, k); err != nil && ctx.Err() == nil {
		n.queue.AddRateLimited(k)
		return true
	}
	n.queue.Forget(k)
	return true
}

func (n *Node) handle(ctx context.Context, k string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(k)
	if err != nil {
		return nil
	}
	pod, err := n.lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	pods := n.client.CoreV1().Pods(ns)
	switch {
	case pod.DeletionTimestamp != nil:
		err := pods.Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("finish deleting %s: %w", k, err)
		}
		return nil
	case pod.Spec.NodeName == "":
		err := pods.Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: n.name},
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("bind %s: %w", k, err)
		}
		return nil
	case pod.Spec.NodeName != n.name:
		return nil
	}
	ready := n.opts.Unready == nil || !n.opts.Unready(pod)
	if pod.Status.Phase == corev1.PodRunning && isReady(pod) == ready && len(pod.Status.ContainerStatuses) == len(pod.Spec.Containers) {
		return nil
	}
	p := pod.DeepCopy()
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	if p.Status.StartTime == nil {
		p.Status.StartTime = &now
	}
	p.Status.HostIP = "127.0.0.1"
	p.Status.PodIP = "10.0.0.1"
	b := map[bool]corev1.ConditionStatus{true: corev1.ConditionTrue, false: corev1.ConditionFalse}
	setCondition(p, corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}, now)
	setCondition(p, corev1.PodCondition{Type: corev1.ContainersReady, Status: b[ready]}, now)
	setCondition(p, corev1.PodCondition{Type: corev1.PodReady, Status: b[ready]}, now)
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name:    c.Name,
			Image:   c.Image,
			Ready:   ready,
			Started: ptr.To(true),
			State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("report %s running: %w", k, err)
	}
	return nil
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// setCondition sets c on p, moving lastTransitionTime only when the status
// changes.
func setCondition(p *corev1.Pod, c corev1.PodCondition, now metav1.Time) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == c.Type {
			if p.Status.Conditions[i].Status != c.Status {
				p.Status.Conditions[i].Status = c.Status
				p.Status.Conditions[i].LastTransitionTime = now
			}
			return
		}
	}
	c.LastTransitionTime = now
	p.Status.Conditions = append(p.Status.Conditions, c)
}
