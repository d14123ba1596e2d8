package replicaset

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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// Name is the ReplicaSet controller's name (logs, events' source
// component is "replicaset-controller" as in Kubernetes).
const Name = "replicaset"

// RCName is the ReplicationController controller's name (logs, events'
// source component is "replication-controller" as in Kubernetes).
const RCName = "replicationcontroller"

// BurstReplicas caps the creates or deletes of one sync (Kubernetes'
// replicaset.BurstReplicas, 500).
const BurstReplicas = 500

// Controller is the ReplicaSet controller, or the ReplicationController
// controller (the same logic on ReplicationControllers seen as
// ReplicaSets). Build it with New or NewForReplicationControllers before
// the informer factory starts; Run (once) runs it. Safe for concurrent
// use; one object is never synced by two workers at once (the queue's
// guarantee).
type Controller struct {
	client    kubernetes.Interface
	kind      *kind
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	queue     *controller.Queue
	exp       *controller.Expectations
	dels      *deleteTracker
	recorder  record.EventRecorder // set by Run before any worker starts
	log       *slog.Logger
	burst     int
	now       func() time.Time
}

// New returns a ReplicaSet controller using factory's ReplicaSet and Pod
// informers; it registers its event handlers now, so the caller starts
// factory after New (and before or after Run).
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	return newController(client, factory, replicaSets(client, factory), log)
}

// NewForReplicationControllers returns a ReplicationController controller
// using factory's ReplicationController and Pod informers, as New does
// for ReplicaSets.
func NewForReplicationControllers(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	return newController(client, factory, replicationControllers(client, factory), log)
}

// newController returns a controller of k's objects and their pods.
func newController(client kubernetes.Interface, factory informers.SharedInformerFactory, k *kind, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client:    client,
		kind:      k,
		podLister: podInf.Lister(),
		synced:    []cache.InformerSynced{k.informer.HasSynced, podInf.Informer().HasSynced},
		exp:       controller.NewExpectations(),
		dels:      &deleteTracker{m: map[string]map[string]bool{}},
		log:       log.With("controller", k.name),
		burst:     BurstReplicas,
		now:       time.Now,
	}
	c.queue = controller.NewQueue(k.name, log, c.sync)
	k.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.queue.Enqueue,
		UpdateFunc: c.updateRS,
		DeleteFunc: c.deleteRS,
	})
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	})
	return c
}

// Name is Name or RCName.
func (c *Controller) Name() string { return c.kind.name }

// Run records events to the API and runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer b.Shutdown()
	c.recorder = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: c.kind.component})
	c.log.Info("starting", "workers", workers)
	defer c.log.Info("stopped")
	return c.queue.Run(ctx, workers, c.synced...)
}

func key(ns, name string) string { return ns + "/" + name }

func (c *Controller) updateRS(old, cur any) {
	o, _ := c.kind.convert(old)
	n, _ := c.kind.convert(cur)
	if o.UID != n.UID {
		// Deleted and recreated under the same name between two events.
		c.deleteRS(cache.DeletedFinalStateUnknown{Key: key(o.Namespace, o.Name), Obj: o})
	}
	c.queue.Enqueue(n)
}

func (c *Controller) deleteRS(obj any) {
	rs, ok := c.kind.convert(controller.Untomb(obj))
	if !ok {
		return
	}
	k := key(rs.Namespace, rs.Name)
	c.exp.Delete(k)
	c.dels.forget(k)
	c.queue.Add(k)
}

// resolve returns the object ref points at in ns, if it is of the
// controller's kind and still the same object.
func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	rs, _ := controller.Resolve(ref, c.kind.gvk, func(name string) (*appsv1.ReplicaSet, error) { return c.kind.get(ns, name) })
	return rs
}

// matchingRSs are the ReplicaSets in pod's namespace whose selector
// matches pod (candidates to adopt an orphan).
func (c *Controller) matchingRSs(pod *corev1.Pod) []*appsv1.ReplicaSet {
	all, err := c.kind.list(pod.Namespace)
	if err != nil {
		return nil
	}
	var out []*appsv1.ReplicaSet
	for _, rs := range all {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, rs)
	}
	return out
}

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		// A pod already being deleted when first seen (a relist) is not
		// a creation this controller is waiting for.
		c.deletePod(pod)
		return
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		rs := c.resolve(pod.Namespace, ref)
		if rs == nil {
			return
		}
		k := key(rs.Namespace, rs.Name)
		c.exp.CreationObserved(k)
		c.queue.Add(k)
		return
	}
	for _, rs := range c.matchingRSs(pod) {
		c.queue.Enqueue(rs)
	}
}

func (c *Controller) updatePod(old, cur any) {
	o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
	if o.ResourceVersion == n.ResourceVersion {
		return
	}
	labelsChanged := !reflect.DeepEqual(o.Labels, n.Labels)
	if n.DeletionTimestamp != nil {
		// A graceful deletion: replace the pod now, not when it is gone.
		c.deletePod(n)
		if labelsChanged {
			c.deletePod(o)
		}
		return
	}
	oref, nref := metav1.GetControllerOf(o), metav1.GetControllerOf(n)
	refChanged := !reflect.DeepEqual(oref, nref)
	if refChanged && oref != nil {
		if rs := c.resolve(o.Namespace, oref); rs != nil {
			c.queue.Enqueue(rs)
		}
	}
	if nref != nil {
		rs := c.resolve(n.Namespace, nref)
		if rs == nil {
			return
		}
		c.queue.Enqueue(rs)
		if !IsPodReady(o) && IsPodReady(n) && rs.Spec.MinReadySeconds > 0 {
			c.queue.AddAfter(key(rs.Namespace, rs.Name), time.Duration(rs.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	if labelsChanged || refChanged {
		for _, rs := range c.matchingRSs(n) {
			c.queue.Enqueue(rs)
		}
	}
}

func (c *Controller) deletePod(obj any) {
	pod, ok := controller.Untomb(obj).(*corev1.Pod)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return
	}
	rs := c.resolve(pod.Namespace, ref)
	if rs == nil {
		return
	}
	k := key(rs.Namespace, rs.Name)
	if c.dels.observed(k, key(pod.Namespace, pod.Name)) {
		c.exp.DeletionObserved(k)
	}
	c.queue.Add(k)
}

// deleteTracker remembers which pods each ReplicaSet is waiting to see
// deleted, so each deletion lowers the expectations exactly once (as a
// deletionTimestamp update or as the delete, whichever comes first) and a
// pod deleted by someone else lowers nothing.
type deleteTracker struct {
	mu sync.Mutex
	m  map[string]map[string]bool
}

func (d *deleteTracker) expect(rsKey string, podKeys []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := map[string]bool{}
	for _, k := range podKeys {
		s[k] = true
	}
	d.m[rsKey] = s
}

// observed reports whether podKey was awaited by rsKey, and forgets it.
func (d *deleteTracker) observed(rsKey, podKey string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.m[rsKey][podKey] {
		return false
	}
	delete(d.m[rsKey], podKey)
	return true
}

func (d *deleteTracker) forget(rsKey string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, rsKey)
}

// sync reconciles one ReplicaSet: claim pods, create or delete to reach
// spec.replicas (when the cache has caught up with earlier writes), write
// the status.
func (c *Controller) sync(ctx context.Context, k string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(k)
	if err != nil {
		return nil
	}
	rs, err := c.kind.get(ns, name)
	if apierrors.IsNotFound(err) {
		c.exp.Delete(k)
		c.dels.forget(k)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get %s %s: %w", c.kind.name, k, err)
	}
	needsSync := c.exp.Satisfied(k)
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		// Invalid selectors are refused by the API; nothing to retry.
		c.log.Warn("invalid selector", "replicaset", k, "err", err)
		return nil
	}
	all, err := c.podLister.Pods(ns).List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list pods for %s: %w", k, err)
	}
	var active, terminating []*corev1.Pod
	for _, p := range all {
		if IsPodActive(p) {
			active = append(active, p)
		} else if IsPodTerminating(p) && ownedBy(p, rs.UID) && sel.Matches(labels.Set(p.Labels)) {
			terminating = append(terminating, p)
		}
	}
	active, err = c.claimPods(ctx, rs, sel, active)
	if err != nil {
		return fmt.Errorf("claim pods for %s: %w", k, err)
	}
	var manageErr error
	if needsSync && rs.DeletionTimestamp == nil {
		manageErr = c.manageReplicas(ctx, k, rs, active)
	}
	st := CalculateStatus(rs, active, terminating, manageErr, c.now())
	if !c.kind.terminating {
		st.TerminatingReplicas = nil
	}
	if StatusChanged(rs, st.ReplicaSetStatus) {
		rs = rs.DeepCopy()
		rs.Status = st.ReplicaSetStatus
		rs.Status.ObservedGeneration = rs.Generation
		if _, err := controller.WriteStatus(rs,
			func(o *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) { return c.kind.updateStatus(ctx, o) },
			func() (*appsv1.ReplicaSet, error) { return c.kind.fetch(ctx, ns, rs.Name) },
			func(latest, from *appsv1.ReplicaSet) { latest.Status = from.Status }); err != nil {
			return fmt.Errorf("update status of %s %s: %w", c.kind.name, k, err)
		}
	}
	if manageErr != nil {
		return manageErr
	}
	if st.RecheckAfter > 0 {
		c.queue.AddAfter(k, st.RecheckAfter)
	}
	return nil
}

// manageReplicas creates or deletes pods so active reaches spec.replicas.
func (c *Controller) manageReplicas(ctx context.Context, k string, rs *appsv1.ReplicaSet, active []*corev1.Pod) error {
	diff := len(active) - int(ptr.Deref(rs.Spec.Replicas, 1))
	switch {
	case diff < 0:
		n := min(-diff, c.burst)
		c.exp.Expect(k, n, 0)
		c.log.Debug("too few replicas", "replicaset", k, "need", ptr.Deref(rs.Spec.Replicas, 1), "creating", n)
		ok, err := SlowStartBatch(n, SlowStartInitialBatchSize, func(int) error {
			return c.createPod(ctx, rs)
		})
		// Creates never attempted, or failed, will never be observed.
		for range n - ok {
			c.exp.CreationObserved(k)
		}
		// The API's error alone: it is the ReplicaFailure condition's
		// message, as in kube.
		if err != nil {
			return err
		}
	case diff > 0:
		n := min(diff, c.burst)
		c.log.Debug("too many replicas", "replicaset", k, "need", ptr.Deref(rs.Spec.Replicas, 1), "deleting", n)
		victims := PodsToDelete(active, c.relatedPods(rs), n, c.now())
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = key(p.Namespace, p.Name)
		}
		c.dels.expect(k, keys)
		c.exp.Expect(k, 0, len(victims))
		errs := make(chan error, len(victims))
		var wg sync.WaitGroup
		for _, p := range victims {
			wg.Go(func() {
				if err := c.deletePodOf(ctx, rs, p); err != nil {
					if c.dels.observed(k, key(p.Namespace, p.Name)) {
						c.exp.DeletionObserved(k)
					}
					if !apierrors.IsNotFound(err) {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

func (c *Controller) createPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	pod := controller.PodFromTemplate(&rs.Spec.Template, rs, c.kind.gvk)
	if len(pod.Labels) == 0 {
		return fmt.Errorf("unable to create pods, no labels")
	}
	created, err := c.client.CoreV1().Pods(rs.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			// Every create will fail until the namespace is gone.
			return nil
		}
		c.recorder.Eventf(rs, corev1.EventTypeWarning, EventFailedCreate, "Error creating: %v", err)
		return err
	}
	c.recorder.Eventf(rs, corev1.EventTypeNormal, EventSuccessfulCreate, "Created pod: %v", created.Name)
	return nil
}

func (c *Controller) deletePodOf(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return err
		}
		c.recorder.Eventf(rs, corev1.EventTypeWarning, EventFailedDelete, "Error deleting: %v", err)
		return fmt.Errorf("delete pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	c.recorder.Eventf(rs, corev1.EventTypeNormal, EventSuccessfulDelete, "Deleted pod: %v", pod.Name)
	return nil
}

// relatedPods are the active pods of every ReplicaSet with the same
// controller as rs (rs itself included): a Deployment's old and new sets.
func (c *Controller) relatedPods(rs *appsv1.ReplicaSet) []*corev1.Pod {
	owners := map[types.UID]bool{rs.UID: true}
	if ref := metav1.GetControllerOf(rs); ref != nil {
		siblings, _ := c.kind.list(rs.Namespace)
		for _, s := range siblings {
			if sref := metav1.GetControllerOf(s); sref != nil && sref.UID == ref.UID {
				owners[s.UID] = true
			}
		}
	}
	pods, _ := c.podLister.Pods(rs.Namespace).List(labels.Everything())
	var out []*corev1.Pod
	for _, p := range pods {
		if ref := metav1.GetControllerOf(p); ref != nil && owners[ref.UID] && IsPodActive(p) {
			out = append(out, p)
		}
	}
	return out
}

// claimPods returns the pods rs owns and that match sel, adopting matching
// orphans and releasing owned pods that no longer match (Kubernetes'
// PodControllerRefManager.ClaimPods).
func (c *Controller) claimPods(ctx context.Context, rs *appsv1.ReplicaSet, sel labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	var (
		checked  bool
		adoptErr error
	)
	canAdopt := func() error {
		if checked {
			return adoptErr
		}
		checked = true
		// A fresh read: the cache may not show that rs is being deleted.
		fresh, err := c.kind.fetch(ctx, rs.Namespace, rs.Name)
		switch {
		case err != nil:
			adoptErr = err
		case fresh.UID != rs.UID:
			adoptErr = fmt.Errorf("original %s %s/%s is gone: got uid %s, wanted %s", c.kind.gvk.Kind, rs.Namespace, rs.Name, fresh.UID, rs.UID)
		case fresh.DeletionTimestamp != nil:
			adoptErr = fmt.Errorf("%s/%s has just been deleted at %v", rs.Namespace, rs.Name, fresh.DeletionTimestamp)
		}
		return adoptErr
	}
	var claimed []*corev1.Pod
	var errs []error
	for _, pod := range pods {
		match := sel.Matches(labels.Set(pod.Labels))
		if ref := metav1.GetControllerOf(pod); ref != nil {
			if ref.UID != rs.UID {
				continue
			}
			if match {
				claimed = append(claimed, pod)
				continue
			}
			if rs.DeletionTimestamp != nil {
				continue
			}
			if err := c.releasePod(ctx, rs, pod); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if !match || rs.DeletionTimestamp != nil || pod.DeletionTimestamp != nil {
			continue
		}
		if err := canAdopt(); err != nil {
			errs = append(errs, fmt.Errorf("can't adopt pod %s/%s: %w", pod.Namespace, pod.Name, err))
			continue
		}
		adopted, err := c.adoptPod(ctx, rs, pod)
		if err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		claimed = append(claimed, adopted)
	}
	return claimed, utilerrors.NewAggregate(errs)
}

func (c *Controller) adoptPod(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) (*corev1.Pod, error) {
	patch, err := AdoptPatch(rs, c.kind.gvk, pod.UID)
	if err != nil {
		return nil, err
	}
	p, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("adopt pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	c.log.Debug("adopted pod", "replicaset", key(rs.Namespace, rs.Name), "pod", pod.Name)
	return p, nil
}

func (c *Controller) releasePod(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	_, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, ReleasePatch(rs.UID, pod.UID), metav1.PatchOptions{})
	// NotFound: gone; Invalid: the uid changed (recreated) or no owner
	// reference is left. Either way nothing to release.
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
		return fmt.Errorf("release pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	c.log.Debug("released pod", "replicaset", key(rs.Namespace, rs.Name), "pod", pod.Name)
	return nil
}

// AdoptPatch is the strategic-merge patch that makes owner (of kind gvk)
// the controller of the object with uid (the uid guards against a
// recreated object of the same name), as Kubernetes' controllers send it.
func AdoptPatch(owner metav1.Object, gvk schema.GroupVersionKind, uid types.UID) ([]byte, error) {
	return json.Marshal(map[string]any{
		"metadata": map[string]any{
			"ownerReferences": []metav1.OwnerReference{{
				APIVersion:         gvk.GroupVersion().String(),
				Kind:               gvk.Kind,
				Name:               owner.GetName(),
				UID:                owner.GetUID(),
				Controller:         ptr.To(true),
				BlockOwnerDeletion: ptr.To(true),
			}},
			"uid": uid,
		},
	})
}

// ReleasePatch is the strategic-merge patch removing the owner reference to
// ownerUID from the object with uid.
func ReleasePatch(ownerUID, uid types.UID) []byte {
	return fmt.Appendf(nil, `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":%q}],"uid":%q}}`, ownerUID, uid)
}
