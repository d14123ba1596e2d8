// Package disruption is wasmfleet's disruption controller: it keeps the
// status of each PodDisruptionBudget as Kubernetes' disruption controller
// does, which the API server's eviction reads to allow or refuse (429) a
// voluntary disruption such as kubectl drain's:
//
//   - expectedPods: the pods the budget selects (minAvailable an integer),
//     or the replicas of their controllers (maxUnavailable, or minAvailable
//     a percentage), which must then be ReplicaSets, Deployments,
//     StatefulSets or ReplicationControllers;
//   - desiredHealthy: minAvailable, or expectedPods less maxUnavailable,
//     percentages rounded up;
//   - currentHealthy: the selected pods that are Ready and neither being
//     deleted nor disrupted (evicted less than two minutes ago, the
//     eviction having recorded them in disruptedPods);
//   - disruptionsAllowed: currentHealthy less desiredHealthy, never below
//     zero, and zero while expectedPods is;
//   - observedGeneration and the DisruptionAllowed condition
//     (SufficientPods, InsufficientPods, or SyncFailed with the error, when
//     the status cannot be computed: disruptionsAllowed is then 0).
//
// A null selector selects no pod, an empty one every pod of the budget's
// namespace (policy/v1). A pod the eviction recorded as disrupted but that
// is not gone after two minutes counts again (with a NotDeleted event), and
// the budget is synced again when that time comes; a DisruptionTarget
// condition the eviction set on a pod that is still not being deleted two
// minutes later is reset to False. Only ReplicaSets, Deployments,
// StatefulSets and ReplicationControllers have a scale here (no other
// served kind has a scale subresource).
package disruption

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/wasmfleet/wasmfleet/controlplane/budget"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// Name is the controller's name (queue, logs, event source).
const Name = "disruption"

// DeletionTimeout is how long a pod the eviction recorded as disrupted is
// expected to take to go, as Kubernetes' (2 minutes).
const DeletionTimeout = 2 * time.Minute

// Controller is the disruption controller. Create it with New; Run it once.
type Controller struct {
	client      kubernetes.Interface
	pdbs        policylisters.PodDisruptionBudgetLister
	pods        corelisters.PodLister
	replicaSets appslisters.ReplicaSetLister
	deployments appslisters.DeploymentLister
	sets        appslisters.StatefulSetLister
	rcs         corelisters.ReplicationControllerLister
	synced      []cache.InformerSynced
	queue       *controller.Queue // budgets
	stale       *controller.Queue // pods whose DisruptionTarget may be stale

	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	log         *slog.Logger
	now         func() time.Time
}

var _ controller.Controller = (*Controller)(nil)

// New returns a disruption controller on factory's informers, whose event
// handlers it registers now: start factory after New.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	pdbInf, podInf := factory.Policy().V1().PodDisruptionBudgets(), factory.Core().V1().Pods()
	rsInf, dInf := factory.Apps().V1().ReplicaSets(), factory.Apps().V1().Deployments()
	ssInf, rcInf := factory.Apps().V1().StatefulSets(), factory.Core().V1().ReplicationControllers()
	b := record.NewBroadcaster()
	c := &Controller{
		client:      client,
		pdbs:        pdbInf.Lister(),
		pods:        podInf.Lister(),
		replicaSets: rsInf.Lister(),
		deployments: dInf.Lister(),
		sets:        ssInf.Lister(),
		rcs:         rcInf.Lister(),
		synced: []cache.InformerSynced{pdbInf.Informer().HasSynced, podInf.Informer().HasSynced,
			rsInf.Informer().HasSynced, dInf.Informer().HasSynced, ssInf.Informer().HasSynced, rcInf.Informer().HasSynced},
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "controllermanager"}),
		log:         log.With("controller", Name),
		now:         time.Now,
	}
	c.queue = controller.NewQueue(Name, log, c.sync)
	c.stale = controller.NewQueue(Name+"-stale-pod-disruption", log, c.syncStale)
	pdbInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.queue.Enqueue,
		UpdateFunc: func(_, cur any) { c.queue.Enqueue(cur) },
		DeleteFunc: c.queue.Enqueue,
	})
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			c.enqueueForPod(obj)
			c.enqueueStale(obj.(*corev1.Pod))
		},
		UpdateFunc: func(old, cur any) {
			c.enqueueForPod(cur)
			if !labels.Equals(old.(*corev1.Pod).Labels, cur.(*corev1.Pod).Labels) {
				c.enqueueForPod(old)
			}
			c.enqueueStale(cur.(*corev1.Pod))
		},
		DeleteFunc: c.enqueueForPod,
	})
	// A controller's replicas are the expected pods of the budgets of its
	// pods.
	scaled := func(obj any) {
		m, err := apimeta.Accessor(obj)
		if err != nil {
			return
		}
		c.enqueueAll(m.GetNamespace())
	}
	for _, inf := range []cache.SharedIndexInformer{rsInf.Informer(), dInf.Informer(), ssInf.Informer(), rcInf.Informer()} {
		inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(old, cur any) {
				if replicas(old) != replicas(cur) {
					scaled(cur)
				}
			},
		})
	}
	return c
}

func replicas(obj any) int32 {
	switch o := obj.(type) {
	case *appsv1.ReplicaSet:
		return derefReplicas(o.Spec.Replicas)
	case *appsv1.Deployment:
		return derefReplicas(o.Spec.Replicas)
	case *appsv1.StatefulSet:
		return derefReplicas(o.Spec.Replicas)
	case *corev1.ReplicationController:
		return derefReplicas(o.Spec.Replicas)
	}
	return 0
}

func derefReplicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// Name implements controller.Controller.
func (c *Controller) Name() string { return Name }

// Run syncs budgets with workers workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer controller.RecordEvents(c.broadcaster, c.client)()
	errc := make(chan error, 1)
	go func() { errc <- c.stale.Run(ctx, 1, c.synced...) }()
	err := c.queue.Run(ctx, workers, c.synced...)
	if serr := <-errc; err == nil {
		err = serr
	}
	return err
}

// enqueueForPod queues the budgets that select the pod (or its tombstone).
func (c *Controller) enqueueForPod(obj any) {
	obj = controller.Untomb(obj)
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	pdbs, err := c.pdbs.PodDisruptionBudgets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, pdb := range pdbs {
		if budget.Selector(pdb).Matches(labels.Set(pod.Labels)) {
			c.queue.Enqueue(pdb)
		}
	}
}

// enqueueAll queues every budget of namespace ns.
func (c *Controller) enqueueAll(ns string) {
	pdbs, err := c.pdbs.PodDisruptionBudgets(ns).List(labels.Everything())
	if err != nil {
		return
	}
	for _, pdb := range pdbs {
		c.queue.Enqueue(pdb)
	}
}

// sync computes and writes the status of the budget named by key. When it
// cannot be computed, disruptionsAllowed is set to 0 (Kubernetes' fail
// safe): the eviction must not allow what may be unsafe.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pdb, err := c.pdbs.PodDisruptionBudgets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	err = c.trySync(ctx, pdb)
	if err == nil || apierrors.IsConflict(err) {
		return err
	}
	c.log.Warn("disruption budget: cannot compute its status", "pdb", key, "err", err)
	failed := pdb.DeepCopy()
	failed.Status.DisruptionsAllowed = 0
	if failed.Status.Conditions == nil {
		failed.Status.Conditions = []metav1.Condition{}
	}
	apimeta.SetStatusCondition(&failed.Status.Conditions, metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse,
		Reason: policyv1.SyncFailedReason, Message: err.Error(), ObservedGeneration: failed.Status.ObservedGeneration})
	// Written, the budget waits for a change of it or of its pods, as in
	// Kubernetes, rather than computing the same error again and again.
	_, err = c.client.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, failed, metav1.UpdateOptions{})
	return err
}

func (c *Controller) trySync(ctx context.Context, pdb *policyv1.PodDisruptionBudget) error {
	pods, err := c.pods.Pods(pdb.Namespace).List(budget.Selector(pdb))
	if err != nil {
		return err
	}
	if len(pods) == 0 {
		c.recorder.Event(pdb, corev1.EventTypeNormal, "NoPods", "No matching pods found")
	}
	expected, desired, unmanaged, err := c.expectedPods(pdb, pods)
	if err != nil {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "CalculateExpectedPodCountFailed", "Failed to calculate the number of expected pods: %v", err)
		return err
	}
	if len(unmanaged) > 0 {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "UnmanagedPods", "Pods selected by this PodDisruptionBudget (selector: %v) were found "+
			"to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. "+
			"To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.", pdb.Spec.Selector)
	}
	now := c.now()
	disrupted, recheck := c.disruptedPods(pdb, pods, now)
	healthy := int32(0)
	for _, pod := range pods {
		if _, gone := disrupted[pod.Name]; !gone && pod.DeletionTimestamp == nil && budget.Healthy(pod) {
			healthy++
		}
	}
	if err := c.writeStatus(ctx, pdb, healthy, desired, expected, disrupted); err != nil {
		return err
	}
	if !recheck.IsZero() {
		c.queue.AddAfter(pdb.Namespace+"/"+pdb.Name, recheck.Sub(now))
	}
	return nil
}

// expectedPods returns the pods the budget expects, how many of them must
// be healthy, and the selected pods without a controller (not counted).
func (c *Controller) expectedPods(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod) (expected, desired int32, unmanaged []string, err error) {
	minAvailable, maxUnavailable := pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable
	switch {
	case minAvailable == nil && maxUnavailable == nil:
		return 0, 0, nil, nil
	case maxUnavailable == nil && minAvailable.Type == intstr.Int:
		return int32(len(pods)), minAvailable.IntVal, nil, nil
	}
	if expected, unmanaged, err = c.scaleOf(pods); err != nil {
		return 0, 0, nil, err
	}
	bound := minAvailable
	if maxUnavailable != nil {
		bound = maxUnavailable
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(bound, int(expected), true)
	if err != nil {
		return 0, 0, nil, err
	}
	if maxUnavailable != nil {
		return expected, max(expected-int32(n), 0), unmanaged, nil
	}
	return expected, int32(n), unmanaged, nil
}

// scaleOf sums the replicas of the pods' controllers, each counted once;
// pods without a controller are returned by name.
func (c *Controller) scaleOf(pods []*corev1.Pod) (int32, []string, error) {
	scales := map[types.UID]int32{}
	var unmanaged []string
	for _, pod := range pods {
		ref := metav1.GetControllerOf(pod)
		if ref == nil {
			unmanaged = append(unmanaged, pod.Name)
			continue
		}
		if _, ok := scales[ref.UID]; ok {
			continue
		}
		uid, n, err := c.controllerScale(ref, pod)
		if err != nil {
			return 0, nil, err
		}
		scales[uid] = n
	}
	var sum int32
	for _, n := range scales {
		sum += n
	}
	return sum, unmanaged, nil
}

// controllerScale finds the scale of the controller ref of pod: a
// Deployment's through its ReplicaSet, a ReplicaSet's own, a
// StatefulSet's or a ReplicationController's (Kubernetes' finders).
func (c *Controller) controllerScale(ref *metav1.OwnerReference, pod *corev1.Pod) (types.UID, int32, error) {
	if ref.Kind == "ReplicaSet" && ref.APIVersion == appsv1.SchemeGroupVersion.String() {
		rs, err := c.replicaSets.ReplicaSets(pod.Namespace).Get(ref.Name)
		if err == nil && rs.UID == ref.UID {
			if dref := metav1.GetControllerOf(rs); dref != nil && dref.Kind == "Deployment" {
				d, err := c.deployments.Deployments(pod.Namespace).Get(dref.Name)
				if err == nil && d.UID == dref.UID {
					return d.UID, derefReplicas(d.Spec.Replicas), nil
				}
			} else {
				return rs.UID, derefReplicas(rs.Spec.Replicas), nil
			}
		}
	}
	if ref.Kind == "StatefulSet" && ref.APIVersion == appsv1.SchemeGroupVersion.String() {
		ss, err := c.sets.StatefulSets(pod.Namespace).Get(ref.Name)
		if err == nil && ss.UID == ref.UID {
			return ss.UID, derefReplicas(ss.Spec.Replicas), nil
		}
	}
	if ref.Kind == "ReplicationController" && ref.APIVersion == corev1.SchemeGroupVersion.String() {
		rc, err := c.rcs.ReplicationControllers(pod.Namespace).Get(ref.Name)
		if err == nil && rc.UID == ref.UID {
			return rc.UID, derefReplicas(rc.Spec.Replicas), nil
		}
	}
	switch ref.Kind {
	case "DaemonSet", "Job":
		gv, _ := schema.ParseGroupVersion(ref.APIVersion)
		return "", 0, fmt.Errorf("%s does not implement the scale subresource", gv.WithResource(strings.ToLower(ref.Kind)+"s").GroupResource())
	}
	return "", 0, fmt.Errorf("found no controllers for pod %q", pod.Name)
}

// disruptedPods keeps the entries of the budget's disruptedPods whose pods
// still exist, are not being deleted and are within DeletionTimeout of
// their eviction; recheck is when the first of them times out (zero: none).
func (c *Controller) disruptedPods(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, now time.Time) (map[string]metav1.Time, time.Time) {
	kept := map[string]metav1.Time{}
	var recheck time.Time
	for _, pod := range pods {
		at, ok := pdb.Status.DisruptedPods[pod.Name]
		if !ok || pod.DeletionTimestamp != nil {
			continue
		}
		due := at.Add(DeletionTimeout)
		if due.Before(now) {
			c.recorder.Eventf(pod, corev1.EventTypeWarning, "NotDeleted", "Pod was expected by PDB %s/%s to be deleted but it wasn't", pdb.Namespace, pdb.Name)
			continue
		}
		if recheck.IsZero() || due.Before(recheck) {
			recheck = due
		}
		kept[pod.Name] = at
	}
	return kept, recheck
}

// writeStatus writes the status computed, unless the budget has it.
func (c *Controller) writeStatus(ctx context.Context, pdb *policyv1.PodDisruptionBudget, healthy, desired, expected int32, disrupted map[string]metav1.Time) error {
	allowed := healthy - desired
	if expected <= 0 || allowed < 0 {
		// A budget that selects nothing yet allows nothing: its first pods
		// may come before this controller has counted them.
		allowed = 0
	}
	st := pdb.Status
	if st.CurrentHealthy == healthy && st.DesiredHealthy == desired && st.ExpectedPods == expected && st.DisruptionsAllowed == allowed &&
		maps.EqualFunc(st.DisruptedPods, disrupted, func(a, b metav1.Time) bool { return a.Equal(&b) }) &&
		st.ObservedGeneration == pdb.Generation && budget.ConditionUpToDate(pdb) {
		return nil
	}
	out := pdb.DeepCopy()
	out.Status = policyv1.PodDisruptionBudgetStatus{CurrentHealthy: healthy, DesiredHealthy: desired, ExpectedPods: expected,
		DisruptionsAllowed: allowed, DisruptedPods: disrupted, ObservedGeneration: pdb.Generation, Conditions: out.Status.Conditions}
	budget.SetCondition(out)
	_, err := c.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, out, metav1.UpdateOptions{})
	return err
}

// StalePodDisruptionTimeout is how long a pod may keep a DisruptionTarget
// condition without being deleted before the condition is reset, as
// Kubernetes' (2 minutes): an eviction that marked it and was then
// refused, or whose delete failed.
const StalePodDisruptionTimeout = 2 * time.Minute

// staleDisruption says whether the pod has a DisruptionTarget condition
// that goes stale if it is not deleted, and in how long it does. The
// condition is never stale on a pod being deleted or finished, nor when
// the node set it (TerminationByKubelet).
func staleDisruption(pod *corev1.Pod, now time.Time) (bool, time.Duration) {
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false, 0
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.DisruptionTarget {
			if cond.Status != corev1.ConditionTrue || cond.Reason == corev1.PodReasonTerminationByKubelet {
				return false, 0
			}
			return true, max(StalePodDisruptionTimeout-now.Sub(cond.LastTransitionTime.Time), 0)
		}
	}
	return false, 0
}

// enqueueStale queues the pod for when its DisruptionTarget condition goes
// stale, if it has one that can.
func (c *Controller) enqueueStale(pod *corev1.Pod) {
	if ok, in := staleDisruption(pod, c.now()); ok {
		c.stale.AddAfter(pod.Namespace+"/"+pod.Name, in)
	}
}

// syncStale resets the stale DisruptionTarget condition of the pod named
// by key to False.
func (c *Controller) syncStale(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ok, in := staleDisruption(pod, c.now())
	if !ok {
		return nil
	}
	if in > 0 {
		c.stale.AddAfter(key, in)
		return nil
	}
	pod = pod.DeepCopy()
	for i := range pod.Status.Conditions {
		if cond := &pod.Status.Conditions[i]; cond.Type == corev1.DisruptionTarget {
			cond.Status, cond.LastTransitionTime = corev1.ConditionFalse, metav1.NewTime(c.now())
		}
	}
	_, err = c.client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	return err
}
