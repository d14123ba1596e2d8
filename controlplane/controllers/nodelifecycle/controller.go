// Package nodelifecycle is the node lifecycle controller: it watches Nodes
// and their Leases in kube-node-lease, marks a node it has not heard from
// for a grace period Unknown (conditions Ready, MemoryPressure, DiskPressure
// and PIDPressure, reason NodeStatusUnknown), taints nodes by their
// conditions (node.kubernetes.io/unreachable and not-ready with effects
// NoExecute and NoSchedule, and Kubernetes' other condition taints), marks
// the pods of an unreachable node not Ready, and evicts pods from nodes with
// NoExecute taints they do not tolerate (at once) or tolerate for
// tolerationSeconds (that long after the taint was added, or after the pod
// came to be on the node if that was later), as Kubernetes'
// node lifecycle and taint eviction controllers do. Evicting is an ordinary
// graceful pod deletion; the pod's owner recreates it elsewhere.
//
// The decisions are pure functions in health.go; the Controller only reads
// its informers, calls them and writes the result.
package nodelifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	coordinationlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// Name is the controller's name (logs, workqueue, event source).
const Name = "node-lifecycle"

// podsByNodeIndex indexes the shared pod informer by spec.nodeName.
const podsByNodeIndex = "wasmfleet.io/nodelifecycle-node"

// Options tune the controller; zero values take Kubernetes' defaults.
type Options struct {
	// NodeMonitorGracePeriod is how long a node may go unheard from (no
	// lease renewal, no Ready condition change) before it is marked
	// Unknown and tainted unreachable. Default 40s.
	NodeMonitorGracePeriod time.Duration
	// NodeStartupGracePeriod replaces it for a node that never posted a
	// Ready condition. Default 60s.
	NodeStartupGracePeriod time.Duration
	// NodeMonitorPeriod is how often every node is checked. Default 5s.
	NodeMonitorPeriod time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.NodeMonitorGracePeriod <= 0 {
		o.NodeMonitorGracePeriod = 40 * time.Second
	}
	if o.NodeStartupGracePeriod <= 0 {
		o.NodeStartupGracePeriod = 60 * time.Second
	}
	if o.NodeMonitorPeriod <= 0 {
		o.NodeMonitorPeriod = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Controller is the node lifecycle controller. Build it with New; Run it
// once.
type Controller struct {
	client  kubernetes.Interface
	opts    Options
	log     *slog.Logger
	nodes   corelisters.NodeLister
	leases  coordinationlisters.LeaseLister
	pods    cache.Indexer
	synced  []cache.InformerSynced
	queue   *controller.Queue
	nodeRec record.EventRecorder // set by Run before workers start
	podRec  record.EventRecorder

	mu sync.Mutex
	// seen is the heartbeat per node; taintSeen is when the controller
	// first saw each NoExecute taint without timeAdded, per node; podSeen
	// is when it first saw each pod on a node with NoExecute taints, per
	// node.
	seen      map[string]*heartbeat
	taintSeen map[string]map[managedTaint]time.Time
	podSeen   map[string]map[types.UID]time.Time
}

var _ controller.Controller = (*Controller)(nil)

// New builds the controller on factory's Node, Lease and Pod informers,
// registering its handlers (and a pods-by-node index) on them; the caller
// starts the factory after every controller is built.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	c := &Controller{
		client:    client,
		opts:      opts.withDefaults(),
		log:       log.With("controller", Name),
		seen:      map[string]*heartbeat{},
		taintSeen: map[string]map[managedTaint]time.Time{},
		podSeen:   map[string]map[types.UID]time.Time{},
	}
	c.queue = controller.NewQueue(Name, log, c.sync)

	nodeInf := factory.Core().V1().Nodes()
	leaseInf := factory.Coordination().V1().Leases()
	podInf := factory.Core().V1().Pods()
	c.nodes, c.leases = nodeInf.Lister(), leaseInf.Lister()

	nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.queue.Enqueue,
		UpdateFunc: func(_, obj any) { c.queue.Enqueue(obj) },
		DeleteFunc: c.queue.Enqueue,
	})
	onLease := func(obj any) {
		obj = controller.Untomb(obj)
		if l, ok := obj.(*coordinationv1.Lease); ok && l.Namespace == corev1.NamespaceNodeLease {
			c.queue.Add(l.Name)
		}
	}
	leaseInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onLease,
		UpdateFunc: func(_, obj any) { onLease(obj) },
		DeleteFunc: onLease,
	})

	pi := podInf.Informer()
	if err := pi.AddIndexers(cache.Indexers{podsByNodeIndex: podNodeName}); err != nil {
		// Only possible if the factory was started already: a wiring bug.
		c.log.Error("add pod index", "err", err)
	}
	c.pods = pi.GetIndexer()
	onPod := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" && c.nodeNeedsPodWork(p.Spec.NodeName) {
			c.queue.Add(p.Spec.NodeName)
		}
	}
	pi.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onPod,
		UpdateFunc: func(_, obj any) { onPod(obj) },
	})
	c.synced = []cache.InformerSynced{nodeInf.Informer().HasSynced, leaseInf.Informer().HasSynced, pi.HasSynced}
	return c
}

func podNodeName(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Spec.NodeName == "" {
		return nil, nil
	}
	return []string{p.Spec.NodeName}, nil
}

// nodeNeedsPodWork reports whether a pod change on node may call for an
// eviction or a not-ready mark: the node has a NoExecute taint or is not
// Ready.
func (c *Controller) nodeNeedsPodWork(name string) bool {
	node, err := c.nodes.Get(name)
	if err != nil {
		return false
	}
	if len(noExecuteTaints(node.Spec.Taints)) > 0 {
		return true
	}
	r := readyCondition(node)
	return r != nil && r.Status == corev1.ConditionUnknown
}

// Name implements controller.Controller.
func (c *Controller) Name() string { return Name }

// Run checks every node each NodeMonitorPeriod and on every change of it,
// its lease or its pods, with workers workers, until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	b := record.NewBroadcaster(record.WithContext(ctx))
	defer b.Shutdown()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	c.nodeRec = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "node-controller"})
	c.podRec = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "taint-eviction-controller"})

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
			return
		}
		t := time.NewTicker(c.opts.NodeMonitorPeriod)
		defer t.Stop()
		for {
			nodes, err := c.nodes.List(labels.Everything())
			if err == nil {
				for _, n := range nodes {
					c.queue.Add(n.Name)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return c.queue.Run(ctx, workers, c.synced...)
}

// sync brings one node's conditions and taints up to date and evicts or
// marks its pods.
func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.seen, name)
		delete(c.taintSeen, name)
		delete(c.podSeen, name)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	lease, err := c.leases.Leases(corev1.NamespaceNodeLease).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err != nil {
		lease = nil
	}
	now := c.opts.Now()
	c.mu.Lock()
	hb := observe(c.seen[name], node, lease, now)
	c.seen[name] = &hb
	c.mu.Unlock()

	if conds, changed := nodeHealth(node, hb.probe, now, c.opts.NodeMonitorGracePeriod, c.opts.NodeStartupGracePeriod); changed {
		wasReady := readyCondition(node)
		n := node.DeepCopy()
		n.Status.Conditions = conds
		updated, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("mark node %s unknown: %w", name, err)
		}
		node = updated
		c.mu.Lock()
		// Our own write is not news from the node.
		c.seen[name].ready = readyCondition(node)
		c.mu.Unlock()
		c.log.Info("node stopped posting status", "node", name, "lastHeard", hb.probe)
		if wasReady != nil && wasReady.Status == corev1.ConditionTrue {
			c.nodeRec.Eventf(node, corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", name)
		}
	}

	if taints := wantTaints(node, now); !apiequality.Semantic.DeepEqual(taints, node.Spec.Taints) {
		n := node.DeepCopy()
		n.Spec.Taints = taints
		updated, err := c.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("taint node %s: %w", name, err)
		}
		node = updated
	}

	pods, err := c.pods.ByIndex(podsByNodeIndex, name)
	if err != nil {
		return err
	}
	var errs []error
	if r := readyCondition(node); r != nil && r.Status == corev1.ConditionUnknown {
		errs = append(errs, c.markPodsNotReady(ctx, pods, name, now))
	}
	next, err := c.evict(ctx, node, pods, now)
	errs = append(errs, err)
	if !next.IsZero() {
		c.queue.AddAfter(name, next.Sub(now))
	}
	return errors.Join(errs...)
}

// evict deletes the node's pods whose NoExecute toleration ran out and
// returns when the next one will (zero: none).
func (c *Controller) evict(ctx context.Context, node *corev1.Node, pods []any, now time.Time) (time.Time, error) {
	taints := noExecuteTaints(node.Spec.Taints)
	since := c.taintTimes(node.Name, taints, now)
	var live []*corev1.Pod
	if len(taints) > 0 {
		for _, o := range pods {
			pod := o.(*corev1.Pod)
			if pod.DeletionTimestamp == nil && pod.Spec.NodeName == node.Name {
				live = append(live, pod)
			}
		}
	}
	onNode := c.podTimes(node.Name, live, now)
	var next time.Time
	var errs []error
	for _, pod := range live {
		at, evict := podEvictionTime(pod, taints, since, onNode(pod))
		if !evict {
			continue
		}
		if at.After(now) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		err := c.markDisruption(ctx, pod, now)
		if err == nil {
			err = c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{UID: &pod.UID},
			})
		}
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("evict pod %s/%s: %w", pod.Namespace, pod.Name, err))
			continue
		}
		if err == nil {
			c.log.Info("evicted pod from tainted node", "pod", pod.Namespace+"/"+pod.Name, "node", node.Name)
			c.podRec.Eventf(pod, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s/%s", pod.Namespace, pod.Name)
		}
	}
	return next, errors.Join(errs...)
}

// markDisruption sets the pod's DisruptionTarget condition before the
// taint eviction deletes it, as Kubernetes' taint eviction controller does,
// so that its owner and users see why it went. The patch names the pod's
// uid: it fails (Conflict or NotFound, taken as done by the caller) for
// another pod of the same name.
func (c *Controller) markDisruption(ctx context.Context, pod *corev1.Pod, now time.Time) error {
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.DisruptionTarget && cond.Status == corev1.ConditionTrue {
			return nil
		}
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": pod.UID},
		"status": map[string]any{"conditions": []corev1.PodCondition{{
			Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "DeletionByTaintManager",
			Message: "Taint manager: deleting due to NoExecute taint", LastTransitionTime: metav1.NewTime(now),
		}}},
	})
	if err != nil {
		return err
	}
	_, err = c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsInvalid(err) {
		// The uid did not match: not this pod.
		return apierrors.NewConflict(corev1.Resource("pods"), pod.Name, err)
	}
	return err
}

// taintTimes returns the addition time of each NoExecute taint: its
// timeAdded, or when this controller first saw it. It forgets taints that
// are gone.
func (c *Controller) taintTimes(node string, taints []corev1.Taint, now time.Time) func(corev1.Taint) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.taintSeen[node]
	cur := map[managedTaint]time.Time{}
	for _, t := range taints {
		m := managedTaint{t.Key, t.Effect}
		if at, ok := old[m]; ok {
			cur[m] = at
		} else {
			cur[m] = now
		}
	}
	if len(cur) == 0 {
		delete(c.taintSeen, node)
	} else {
		c.taintSeen[node] = cur
	}
	return func(t corev1.Taint) time.Time {
		if t.TimeAdded != nil {
			return t.TimeAdded.Time
		}
		return cur[managedTaint{t.Key, t.Effect}]
	}
}

// podTimes returns when each of pods, the live pods of a node with
// NoExecute taints, came to be on it: podOnNodeSince, or when this
// controller first saw the pod there if that is earlier. The pod's own
// timestamps make the answer survive a restart of the controller (which
// Kubernetes' taint eviction, counting from when it first processes the
// pod, does not); the controller's sighting keeps a late PodScheduled
// condition from the node agent's clock from stretching the toleration of
// a pod created with spec.nodeName, or of a pod that was on the node before
// the taint. It forgets pods that are gone, and all of them when the node
// has no NoExecute taint.
func (c *Controller) podTimes(node string, pods []*corev1.Pod, now time.Time) func(*corev1.Pod) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.podSeen[node]
	cur := make(map[types.UID]time.Time, len(pods))
	for _, p := range pods {
		if at, ok := old[p.UID]; ok {
			cur[p.UID] = at
		} else {
			cur[p.UID] = now
		}
	}
	if len(cur) == 0 {
		delete(c.podSeen, node)
	} else {
		c.podSeen[node] = cur
	}
	return func(p *corev1.Pod) time.Time {
		at := podOnNodeSince(p)
		if seen, ok := cur[p.UID]; ok && seen.Before(at) {
			return seen
		}
		return at
	}
}

// markPodsNotReady sets the Ready condition of the node's pods to False, as
// Kubernetes' MarkPodsNotReady does for an unreachable node (whose agent
// cannot report it).
func (c *Controller) markPodsNotReady(ctx context.Context, pods []any, node string, now time.Time) error {
	var errs []error
	for _, o := range pods {
		pod := o.(*corev1.Pod)
		if pod.Spec.NodeName != node {
			continue
		}
		i := podReadyIndex(pod)
		if i < 0 || pod.Status.Conditions[i].Status == corev1.ConditionFalse {
			continue
		}
		p := pod.DeepCopy()
		cond := &p.Status.Conditions[i]
		cond.Status, cond.LastTransitionTime = corev1.ConditionFalse, metav1.NewTime(now)
		if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("mark pod %s/%s not ready: %w", p.Namespace, p.Name, err))
			}
			continue
		}
		c.nodeRec.Event(p, corev1.EventTypeWarning, "NodeNotReady", "Node is not ready")
	}
	return errors.Join(errs...)
}

func podReadyIndex(pod *corev1.Pod) int {
	for i, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return i
		}
	}
	return -1
}
