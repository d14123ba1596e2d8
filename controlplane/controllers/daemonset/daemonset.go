// Package daemonset is wasmfleet's DaemonSet controller: it keeps one pod
// of every DaemonSet on each node that should run it, replaces pods made
// from an old template (RollingUpdate with maxUnavailable, or OnDelete),
// and reports the DaemonSet's status, as Kubernetes' daemon controller does.
//
// Unlike Kubernetes, it places daemon pods itself: a pod is created with
// spec.nodeName set (and the matchFields node affinity Kubernetes uses), so
// a fleet's daemons keep being placed while the scheduler is down. It
// therefore checks, besides the node selector, required node affinity and
// taints, that the node runs the pod's runtime class (node label
// runtime.wasmfleet.io/<class>=true; class "wasm" when the template names
// none).
//
// Template revisions are identified by the controller-revision-hash pod
// label (TemplateHash), and each has a ControllerRevision holding the
// patch that restores it, for kubectl rollout history and undo
// (revisions.go).
package daemonset

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	nodelisters "k8s.io/client-go/listers/node/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// Name is the controller's name (queue, logs, event source).
const Name = "daemonset-controller"

// Event reasons, as Kubernetes' daemon controller records them.
const (
	reasonSuccessfulCreate = "SuccessfulCreate"
	reasonFailedCreate     = "FailedCreate"
	reasonSuccessfulDelete = "SuccessfulDelete"
	reasonFailedDelete     = "FailedDelete"
	reasonFailedDaemonPod  = "FailedDaemonPod"
	reasonSelectingAll     = "SelectingAll"
)

const (
	// slowStartInitialBatchSize is the first batch of creates; batches
	// double while they succeed (controller.SlowStartInitialBatchSize).
	slowStartInitialBatchSize = 1
	// failed daemon pods are deleted with per-node back-off.
	failedPodBackoffInitial = time.Second
	failedPodBackoffMax     = 15 * time.Minute
)

var controllerKind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// Controller is the DaemonSet controller. Create it with New; Run it once.
type Controller struct {
	client     kubernetes.Interface
	dsLister   appslisters.DaemonSetLister
	revisions  controller.Revisions
	podLister  corelisters.PodLister
	nodeLister corelisters.NodeLister
	rcLister   nodelisters.RuntimeClassLister
	synced     []cache.InformerSynced

	queue       *controller.Queue
	exp         *controller.Expectations
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	backoff     *flowcontrol.Backoff
	log         *slog.Logger
	now         func() time.Time
}

var _ controller.Controller = (*Controller)(nil)

// New returns a DaemonSet controller using factory's DaemonSet, Pod and
// Node informers, whose event handlers it registers now: start factory
// after New (and before or after Run; Run waits for the caches).
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	dsInf := factory.Apps().V1().DaemonSets()
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	crInf := factory.Apps().V1().ControllerRevisions()
	rcInf := factory.Node().V1().RuntimeClasses()
	b := record.NewBroadcaster()
	c := &Controller{
		client:     client,
		dsLister:   dsInf.Lister(),
		revisions:  controller.Revisions{Client: client, Lister: crInf.Lister(), Kind: controllerKind, HashLabel: appsv1.DefaultDaemonSetUniqueLabelKey},
		podLister:  podInf.Lister(),
		nodeLister: nodeInf.Lister(),
		rcLister:   rcInf.Lister(),
		synced: []cache.InformerSynced{dsInf.Informer().HasSynced, podInf.Informer().HasSynced, nodeInf.Informer().HasSynced,
			crInf.Informer().HasSynced, rcInf.Informer().HasSynced},
		exp:         controller.NewExpectations(),
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Name}),
		backoff:     flowcontrol.NewBackOff(failedPodBackoffInitial, failedPodBackoffMax),
		log:         log.With("controller", Name),
		now:         time.Now,
	}
	c.queue = controller.NewQueue(Name, log, c.sync)
	dsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.queue.Enqueue,
		UpdateFunc: func(_, cur any) { c.queue.Enqueue(cur) },
		DeleteFunc: c.queue.Enqueue,
	})
	podInf.Informer().AddEventHandler(controller.OwnedPodHandlers(c.resolve, c.exp, c.queue, c.enqueueMatching))
	nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.enqueueAll() },
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*corev1.Node)
			n, ok2 := cur.(*corev1.Node)
			if !ok1 || !ok2 || nodeChanged(o, n) {
				c.enqueueAll()
			}
		},
		DeleteFunc: func(any) { c.enqueueAll() },
	})
	return c
}

// Name implements controller.Controller.
func (c *Controller) Name() string { return Name }

// Run records events to the API and runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer controller.RecordEvents(c.broadcaster, c.client)()
	return c.queue.Run(ctx, workers, c.synced...)
}

// nodeChanged says whether a node update can change which daemons it runs.
func nodeChanged(o, n *corev1.Node) bool {
	return !reflect.DeepEqual(o.Labels, n.Labels) ||
		!apiequality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) ||
		o.Spec.Unschedulable != n.Spec.Unschedulable
}

func (c *Controller) enqueueAll() {
	all, err := c.dsLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range all {
		c.queue.Enqueue(ds)
	}
}

// resolve returns the DaemonSet ref names in ns, if it is the one cached.
func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) (*appsv1.DaemonSet, bool) {
	return controller.Resolve(ref, controllerKind, c.dsLister.DaemonSets(ns).Get)
}

// enqueueMatching queues the DaemonSets whose selector matches an orphan.
func (c *Controller) enqueueMatching(pod *corev1.Pod) {
	all, err := c.dsLister.DaemonSets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range all {
		sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		c.queue.Enqueue(ds)
	}
}

func dsKey(ds *appsv1.DaemonSet) string { return ds.Namespace + "/" + ds.Name }

// sync reconciles one DaemonSet.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	ds, err := c.dsLister.DaemonSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Delete(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get daemonset %s: %w", key, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil // the apiserver validates selectors; nothing to do
	}
	if sel.Empty() {
		c.recorder.Event(ds, corev1.EventTypeWarning, reasonSelectingAll, "This daemon set is selecting all pods. A non-empty selector is required.")
		return nil
	}
	if ds.DeletionTimestamp != nil {
		return nil // the garbage collector removes its pods
	}
	hash := TemplateHash(&ds.Spec.Template)
	if err := c.recordRevision(ctx, ds, sel, hash); err != nil {
		return err
	}
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	var rc *nodev1.RuntimeClass // nil: none named, or not known
	if name := ds.Spec.Template.Spec.RuntimeClassName; name != nil && *name != "" {
		rc, _ = c.rcLister.Get(*name)
	}
	if !c.exp.Satisfied(key) {
		return c.updateStatus(ctx, ds, rc, sel, nodes, hash)
	}
	byNode, err := c.podsByNode(ctx, ds, sel)
	if err != nil {
		return err
	}
	if err := c.manage(ctx, ds, rc, nodes, byNode, hash); err != nil {
		return err
	}
	if c.exp.Satisfied(key) && ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
		// Plan on a cache that holds every earlier create and delete.
		if byNode, err = c.podsByNode(ctx, ds, sel); err != nil {
			return err
		}
		del, err := planRollingUpdate(ds, rc, nodes, byNode, hash, c.now())
		if err != nil {
			c.log.Warn("rolling update", "daemonset", key, "err", err)
		} else if len(del) > 0 {
			c.exp.Expect(key, 0, len(del))
			if err := c.deletePods(ctx, ds, del, false); err != nil {
				return err
			}
		}
	}
	return c.updateStatus(ctx, ds, rc, sel, nodes, hash)
}

// manage creates and deletes pods so each node runs what it should.
func (c *Controller) manage(ctx context.Context, ds *appsv1.DaemonSet, rc *nodev1.RuntimeClass, nodes []*corev1.Node, byNode map[string][]*corev1.Pod, hash string) error {
	key := dsKey(ds)
	a := planManage(ds, rc, nodes, byNode)
	now := c.now()
	for _, p := range a.failed {
		bk := string(ds.UID) + "/" + p.Spec.NodeName
		if c.backoff.IsInBackOffSinceUpdate(bk, now) {
			c.queue.AddAfter(key, c.backoff.Get(bk))
			continue
		}
		c.backoff.Next(bk, now)
		c.recorder.Eventf(ds, corev1.EventTypeWarning, reasonFailedDaemonPod, "Found failed daemon pod %s/%s on node %s, will try to kill it", p.Namespace, p.Name, p.Spec.NodeName)
		a.del = append(a.del, p)
	}
	if len(a.create) == 0 && len(a.del) == 0 && len(a.forceDel) == 0 {
		return nil
	}
	c.exp.Expect(key, len(a.create), len(a.del)+len(a.forceDel))
	var errs []error
	if err := c.deletePods(ctx, ds, a.forceDel, true); err != nil {
		errs = append(errs, err)
	}
	if err := c.deletePods(ctx, ds, a.del, false); err != nil {
		errs = append(errs, err)
	}
	if err := c.createPods(ctx, ds, a.create, hash); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("manage daemonset %s: %v", key, errs)
	}
	return nil
}

// newPod builds ds's pod for node.
func newPod(ds *appsv1.DaemonSet, node, hash string) *corev1.Pod {
	pod := controller.PodFromTemplate(&ds.Spec.Template, ds, controllerKind)
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[RevisionHashLabel] = hash
	if gen, ok := ds.Annotations[TemplateGenerationAnnotation]; ok {
		pod.Labels[TemplateGenerationLabel] = gen
	}
	addDaemonTolerations(&pod.Spec)
	bindToNode(&pod.Spec, node)
	return pod
}

// createPods creates ds's pods on nodes in slow-start batches (1, 2, 4, …),
// stopping at the first failed batch; skipped and failed creates are
// marked observed as they will never be.
func (c *Controller) createPods(ctx context.Context, ds *appsv1.DaemonSet, nodes []string, hash string) error {
	key := dsKey(ds)
	batch := min(len(nodes), slowStartInitialBatchSize)
	for pos := 0; pos < len(nodes); {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for _, node := range nodes[pos : pos+batch] {
			wg.Go(func() {
				created, err := c.client.CoreV1().Pods(ds.Namespace).Create(ctx, newPod(ds, node, hash), metav1.CreateOptions{})
				if err != nil {
					c.exp.CreationObserved(key)
					if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
						return
					}
					c.recorder.Eventf(ds, corev1.EventTypeWarning, reasonFailedCreate, "Error creating: %v", err)
					mu.Lock()
					errs = append(errs, fmt.Errorf("create pod on node %s: %w", node, err))
					mu.Unlock()
					return
				}
				c.recorder.Eventf(ds, corev1.EventTypeNormal, reasonSuccessfulCreate, "Created pod: %v", created.Name)
			})
		}
		wg.Wait()
		pos += batch
		if len(errs) > 0 {
			for range nodes[pos:] {
				c.exp.CreationObserved(key)
			}
			return errs[0]
		}
		batch = min(2*batch, len(nodes)-pos)
	}
	return nil
}

// deletePods deletes pods of ds (force: with grace period 0).
func (c *Controller) deletePods(ctx context.Context, ds *appsv1.DaemonSet, pods []*corev1.Pod, force bool) error {
	key := dsKey(ds)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, p := range pods {
		wg.Go(func() {
			opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}}
			if force {
				opts.GracePeriodSeconds = new(int64)
			}
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, opts)
			if err != nil {
				c.exp.DeletionObserved(key)
				if apierrors.IsNotFound(err) {
					return
				}
				c.recorder.Eventf(ds, corev1.EventTypeWarning, reasonFailedDelete, "Error deleting: %v", err)
				mu.Lock()
				errs = append(errs, fmt.Errorf("delete pod %s: %w", p.Name, err))
				mu.Unlock()
				return
			}
			c.recorder.Eventf(ds, corev1.EventTypeNormal, reasonSuccessfulDelete, "Deleted pod: %v", p.Name)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// podsByNode claims ds's pods (adopting matching orphans, releasing owned
// pods that no longer match) and groups them by spec.nodeName. Terminal
// pods already being deleted are left out.
func (c *Controller) podsByNode(ctx context.Context, ds *appsv1.DaemonSet, sel labels.Selector) (map[string][]*corev1.Pod, error) {
	all, err := c.podLister.Pods(ds.Namespace).List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	byNode := map[string][]*corev1.Pod{}
	// One recheck for all orphans, as kube's CanAdopt (once per claim).
	var (
		rechecked  bool
		recheckErr error
	)
	for _, p := range all {
		matches := sel.Matches(labels.Set(p.Labels))
		ref := controller.ControllerOf(p)
		switch {
		case ref != nil && ref.UID != ds.UID:
			continue
		case ref != nil && !matches:
			if p.DeletionTimestamp == nil {
				if err := c.release(ctx, ds, p); err != nil {
					return nil, err
				}
			}
			continue
		case ref == nil:
			if !matches || p.DeletionTimestamp != nil {
				continue
			}
			if !rechecked {
				recheckErr, rechecked = c.recheck(ctx, ds), true
			}
			err := recheckErr
			if err == nil {
				err = c.adopt(ctx, ds, p)
			}
			if err != nil {
				if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || apierrors.IsInvalid(err) {
					continue
				}
				return nil, err
			}
		}
		if p.DeletionTimestamp != nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
			continue
		}
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
	}
	return byNode, nil
}

// recheck fails unless a live read finds ds, not being deleted: only then
// may it adopt.
func (c *Controller) recheck(ctx context.Context, ds *appsv1.DaemonSet) error {
	fresh, err := c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("recheck daemonset before adopting: %w", err)
	}
	if fresh.UID != ds.UID || fresh.DeletionTimestamp != nil {
		return apierrors.NewConflict(appsv1.Resource("daemonsets"), ds.Name, fmt.Errorf("daemonset changed"))
	}
	return nil
}

// adopt makes ds the controller of an orphan pod (after recheck).
func (c *Controller) adopt(ctx context.Context, ds *appsv1.DaemonSet, p *corev1.Pod) error {
	ref := metav1.NewControllerRef(ds, controllerKind)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []metav1.OwnerReference{*ref},
		"uid":             p.UID,
	}})
	if err != nil {
		return err
	}
	_, err = c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("adopt pod %s: %w", p.Name, err)
	}
	return nil
}

// release removes ds's controller reference from a pod it no longer selects.
func (c *Controller) release(ctx context.Context, ds *appsv1.DaemonSet, p *corev1.Pod) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []map[string]any{{"$patch": "delete", "uid": ds.UID}},
		"uid":             p.UID,
	}})
	if err != nil {
		return err
	}
	_, err = c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
		return fmt.Errorf("release pod %s: %w", p.Name, err)
	}
	return nil
}

// updateStatus writes ds's status from the cache if it changed, and
// requeues ds when a ready pod becomes available later (minReadySeconds).
func (c *Controller) updateStatus(ctx context.Context, ds *appsv1.DaemonSet, rc *nodev1.RuntimeClass, sel labels.Selector, nodes []*corev1.Node, hash string) error {
	byNode, err := c.podsByNodeReadOnly(ds, sel)
	if err != nil {
		return err
	}
	st := computeStatus(ds, rc, nodes, byNode, hash, c.now())
	if !apiequality.Semantic.DeepEqual(st, ds.Status) {
		cp := ds.DeepCopy()
		cp.Status = st
		if _, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("update status of daemonset %s: %w", dsKey(ds), err)
		}
	}
	if ds.Spec.MinReadySeconds > 0 && st.NumberReady != st.NumberAvailable {
		c.queue.AddAfter(dsKey(ds), time.Duration(ds.Spec.MinReadySeconds)*time.Second)
	}
	return nil
}

// podsByNodeReadOnly is podsByNode without adopting or releasing: the
// pods ds controls and selects, by node.
func (c *Controller) podsByNodeReadOnly(ds *appsv1.DaemonSet, sel labels.Selector) (map[string][]*corev1.Pod, error) {
	all, err := c.podLister.Pods(ds.Namespace).List(sel)
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	byNode := map[string][]*corev1.Pod{}
	for _, p := range all {
		ref := controller.ControllerOf(p)
		if ref == nil || ref.UID != ds.UID {
			continue
		}
		if p.DeletionTimestamp != nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
			continue
		}
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
	}
	return byNode, nil
}
