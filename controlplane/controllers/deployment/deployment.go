package deployment

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/replicaset"
)

// Name is the controller's name.
const Name = "deployment"

var controllerKind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Controller is the Deployment controller. Build it with New before the
// informer factory starts; Run runs it. Safe for concurrent use; one
// Deployment is never synced by two workers at once (the queue's
// guarantee).
type Controller struct {
	client    kubernetes.Interface
	dLister   appslisters.DeploymentLister
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	queue     *controller.Queue
	recorder  record.EventRecorder // set by Run before any worker starts
	log       *slog.Logger
	now       func() time.Time
}

// New returns a Deployment controller using factory's Deployment,
// ReplicaSet and Pod informers; it registers its event handlers now, so
// the caller starts factory after New.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	dInf := factory.Apps().V1().Deployments()
	rsInf := factory.Apps().V1().ReplicaSets()
	podInf := factory.Core().V1().Pods()
	c := &Controller{
		client:    client,
		dLister:   dInf.Lister(),
		rsLister:  rsInf.Lister(),
		podLister: podInf.Lister(),
		synced:    []cache.InformerSynced{dInf.Informer().HasSynced, rsInf.Informer().HasSynced, podInf.Informer().HasSynced},
		log:       log.With("controller", Name),
		now:       time.Now,
	}
	c.queue = controller.NewQueue(Name, log, c.sync)
	dInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.queue.Enqueue,
		UpdateFunc: func(_, cur any) { c.queue.Enqueue(cur) },
		DeleteFunc: c.queue.Enqueue,
	})
	rsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addRS,
		UpdateFunc: c.updateRS,
		DeleteFunc: c.deleteRS,
	})
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: c.deletePod,
	})
	return c
}

// Name is "deployment".
func (c *Controller) Name() string { return Name }

// Run records events to the API and runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer b.Shutdown()
	c.recorder = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "deployment-controller"})
	c.log.Info("starting", "workers", workers)
	defer c.log.Info("stopped")
	return c.queue.Run(ctx, workers, c.synced...)
}

// Event handlers.

func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) *appsv1.Deployment {
	d, _ := controller.Resolve(ref, controllerKind, c.dLister.Deployments(ns).Get)
	return d
}

// deploymentsFor are the Deployments whose selector matches rs (candidates
// to adopt it).
func (c *Controller) deploymentsFor(rs *appsv1.ReplicaSet) []*appsv1.Deployment {
	ds, err := c.dLister.Deployments(rs.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*appsv1.Deployment
	for _, d := range ds {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(rs.Labels)) {
			continue
		}
		out = append(out, d)
	}
	return out
}

func (c *Controller) addRS(obj any) {
	rs := obj.(*appsv1.ReplicaSet)
	if rs.DeletionTimestamp != nil {
		c.deleteRS(rs)
		return
	}
	if ref := metav1.GetControllerOf(rs); ref != nil {
		if d := c.resolve(rs.Namespace, ref); d != nil {
			c.queue.Enqueue(d)
		}
		return
	}
	for _, d := range c.deploymentsFor(rs) {
		c.queue.Enqueue(d)
	}
}

func (c *Controller) updateRS(old, cur any) {
	o, n := old.(*appsv1.ReplicaSet), cur.(*appsv1.ReplicaSet)
	if o.ResourceVersion == n.ResourceVersion {
		return
	}
	oref, nref := metav1.GetControllerOf(o), metav1.GetControllerOf(n)
	refChanged := !reflect.DeepEqual(oref, nref)
	if refChanged && oref != nil {
		if d := c.resolve(o.Namespace, oref); d != nil {
			c.queue.Enqueue(d)
		}
	}
	if nref != nil {
		if d := c.resolve(n.Namespace, nref); d != nil {
			c.queue.Enqueue(d)
		}
		return
	}
	if refChanged || !reflect.DeepEqual(o.Labels, n.Labels) {
		for _, d := range c.deploymentsFor(n) {
			c.queue.Enqueue(d)
		}
	}
}

func (c *Controller) deleteRS(obj any) {
	rs, ok := controller.Untomb(obj).(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOf(rs); ref != nil {
		if d := c.resolve(rs.Namespace, ref); d != nil {
			c.queue.Enqueue(d)
		}
	}
}

// deletePod wakes a Recreate Deployment waiting for its old pods to go.
func (c *Controller) deletePod(obj any) {
	pod, ok := controller.Untomb(obj).(*corev1.Pod)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return
	}
	rs, err := c.rsLister.ReplicaSets(pod.Namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return
	}
	dref := metav1.GetControllerOf(rs)
	if dref == nil {
		return
	}
	if d := c.resolve(rs.Namespace, dref); d != nil && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		c.queue.Enqueue(d)
	}
}

// sync reconciles one Deployment.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.dLister.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get deployment %s: %w", key, err)
	}
	d := cached.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		c.recorder.Eventf(d, corev1.EventTypeWarning, EventSelectingAll, "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			if _, err := c.client.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("update status of %s: %w", key, err)
			}
		}
		return nil
	}
	rss, err := c.claimReplicaSets(ctx, d, sel)
	if err != nil {
		return fmt.Errorf("claim replicasets for %s: %w", key, err)
	}
	if d.DeletionTimestamp != nil {
		return c.syncStatusOnly(ctx, d, rss)
	}
	if err := c.checkPausedConditions(ctx, d); err != nil {
		return err
	}
	if d.Spec.Paused {
		return c.syncScale(ctx, d, rss)
	}
	scaling, err := c.isScalingEvent(ctx, d, rss)
	if err != nil {
		return err
	}
	if scaling {
		return c.syncScale(ctx, d, rss)
	}
	switch d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		return c.rolloutRecreate(ctx, d, rss, c.podMap(d, sel, rss))
	case appsv1.RollingUpdateDeploymentStrategyType:
		return c.rolloutRolling(ctx, d, rss)
	}
	return fmt.Errorf("unexpected deployment strategy type: %s", d.Spec.Strategy.Type)
}

// claimReplicaSets returns the ReplicaSets d controls and that match sel,
// adopting matching orphans and releasing owned ones that no longer match.
func (c *Controller) claimReplicaSets(ctx context.Context, d *appsv1.Deployment, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var (
		checked  bool
		adoptErr error
	)
	canAdopt := func() error {
		if checked {
			return adoptErr
		}
		checked = true
		fresh, err := c.client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		switch {
		case err != nil:
			adoptErr = err
		case fresh.UID != d.UID:
			adoptErr = fmt.Errorf("original Deployment %s/%s is gone: got uid %s, wanted %s", d.Namespace, d.Name, fresh.UID, d.UID)
		case fresh.DeletionTimestamp != nil:
			adoptErr = fmt.Errorf("%s/%s has just been deleted at %v", d.Namespace, d.Name, fresh.DeletionTimestamp)
		}
		return adoptErr
	}
	var claimed []*appsv1.ReplicaSet
	var errs []error
	for _, rs := range all {
		match := sel.Matches(labels.Set(rs.Labels))
		if ref := metav1.GetControllerOf(rs); ref != nil {
			if ref.UID != d.UID {
				continue
			}
			if match {
				claimed = append(claimed, rs)
				continue
			}
			if d.DeletionTimestamp != nil {
				continue
			}
			_, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.StrategicMergePatchType,
				replicaset.ReleasePatch(d.UID, rs.UID), metav1.PatchOptions{})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
				errs = append(errs, fmt.Errorf("release replicaset %s: %w", rs.Name, err))
			}
			continue
		}
		if !match || d.DeletionTimestamp != nil || rs.DeletionTimestamp != nil {
			continue
		}
		if err := canAdopt(); err != nil {
			errs = append(errs, fmt.Errorf("can't adopt replicaset %s: %w", rs.Name, err))
			continue
		}
		patch, err := replicaset.AdoptPatch(d, controllerKind, rs.UID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		adopted, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("adopt replicaset %s: %w", rs.Name, err))
			}
			continue
		}
		claimed = append(claimed, adopted)
	}
	return claimed, utilerrors.NewAggregate(errs)
}

// podMap groups the pods matching d's selector by the UID of the
// ReplicaSet (of rss) controlling them.
func (c *Controller) podMap(d *appsv1.Deployment, sel labels.Selector, rss []*appsv1.ReplicaSet) map[types.UID][]*corev1.Pod {
	m := make(map[types.UID][]*corev1.Pod, len(rss))
	for _, rs := range rss {
		m[rs.UID] = nil
	}
	pods, _ := c.podLister.Pods(d.Namespace).List(sel)
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil {
			continue
		}
		if _, ok := m[ref.UID]; ok {
			m[ref.UID] = append(m[ref.UID], p)
		}
	}
	return m
}

// checkPausedConditions records pausing and resuming in the Progressing
// condition (Unknown), so a resumed Deployment does not time out at once.
func (c *Controller) checkPausedConditions(ctx context.Context, d *appsv1.Deployment) error {
	if !HasProgressDeadline(d) {
		return nil
	}
	cond := GetCondition(d.Status, appsv1.DeploymentProgressing)
	if cond != nil && cond.Reason == ReasonTimedOut {
		return nil
	}
	pausedCond := cond != nil && cond.Reason == ReasonPaused
	switch {
	case d.Spec.Paused && !pausedCond:
		SetCondition(&d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonPaused, "Deployment is paused", c.now()))
	case !d.Spec.Paused && pausedCond:
		SetCondition(&d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonResumed, "Deployment is resumed", c.now()))
	default:
		return nil
	}
	return c.updateStatus(ctx, d)
}

// updateStatus writes d's status (see controller.WriteStatus), and d
// becomes the object written.
func (c *Controller) updateStatus(ctx context.Context, d *appsv1.Deployment) error {
	client := c.client.AppsV1().Deployments(d.Namespace)
	out, err := controller.WriteStatus(d,
		func(o *appsv1.Deployment) (*appsv1.Deployment, error) {
			return client.UpdateStatus(ctx, o, metav1.UpdateOptions{})
		},
		func() (*appsv1.Deployment, error) { return client.Get(ctx, d.Name, metav1.GetOptions{}) },
		func(latest, from *appsv1.Deployment) { latest.Status = from.Status })
	if err != nil {
		return fmt.Errorf("update status of deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	*d = *out
	return nil
}

// setRevision writes d's revision annotation, guarded by d's
// resourceVersion, through /status (which keeps metadata) as Kubernetes'
// controller does: there it does not bump the generation, which any
// other annotation change does.
func (c *Controller) setRevision(ctx context.Context, d *appsv1.Deployment, rev string) error {
	if d.Annotations[RevisionAnnotation] == rev {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": d.ResourceVersion,
		"annotations":     map[string]string{RevisionAnnotation: rev},
	}})
	if err != nil {
		return err
	}
	out, err := c.client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("set revision of deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	d.ResourceVersion = out.ResourceVersion
	d.Annotations = out.Annotations
	return nil
}

// isScalingEvent reports whether d's replicas differ from what its active
// ReplicaSets were last sized for (their desired-replicas annotation).
func (c *Controller) isScalingEvent(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) (bool, error) {
	newRS, olds, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rss, false)
	if err != nil {
		return false, err
	}
	if newRS == nil {
		return false, nil
	}
	for _, rs := range activeRSs(append(olds, newRS)) {
		if desired, ok := intAnnotation(rs, DesiredReplicasAnnotation); ok && desired != dreplicas(d) {
			return true, nil
		}
	}
	return false, nil
}

// getAllReplicaSetsAndSyncRevision returns the new ReplicaSet (created
// when create is set and it does not exist) and all old ones.
func (c *Controller) getAllReplicaSetsAndSyncRevision(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	_, olds := FindOldReplicaSets(d, rss)
	newRS, err := c.getNewReplicaSet(ctx, d, rss, olds, create)
	if err != nil {
		return nil, nil, err
	}
	return newRS, olds, nil
}

// getNewReplicaSet returns d's ReplicaSet for its current template,
// bringing its annotations up to date and d's revision with it, or creates
// it when create is set.
func (c *Controller) getNewReplicaSet(ctx context.Context, d *appsv1.Deployment, rss, olds []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, error) {
	existing := FindNewReplicaSet(d, rss)
	newRevision := fmt.Sprint(MaxRevision(olds) + 1)
	if existing != nil {
		rsCopy := existing.DeepCopy()
		annotationsChanged := SetNewReplicaSetAnnotations(d, rsCopy, newRevision, true)
		if annotationsChanged || rsCopy.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			rsCopy.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			out, err := c.client.AppsV1().ReplicaSets(rsCopy.Namespace).Update(ctx, rsCopy, metav1.UpdateOptions{})
			if err != nil {
				return nil, fmt.Errorf("update replicaset %s: %w", rsCopy.Name, err)
			}
			// The rest of this sync sees the version written: a second
			// call (isScalingEvent, then the rollout) would otherwise
			// write the same annotations again from the stale copy and
			// fail with a conflict, every time the annotations change.
			for i := range rss {
				if rss[i] == existing {
					rss[i] = out
				}
			}
			return out, nil
		}
		if err := c.setRevision(ctx, d, rsCopy.Annotations[RevisionAnnotation]); err != nil {
			return nil, err
		}
		if HasProgressDeadline(d) && GetCondition(d.Status, appsv1.DeploymentProgressing) == nil {
			SetCondition(&d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonFoundNewRS,
				fmt.Sprintf("Found new replica set %q", rsCopy.Name), c.now()))
			if err := c.updateStatus(ctx, d); err != nil {
				return nil, err
			}
		}
		return rsCopy, nil
	}
	if !create {
		return nil, nil
	}

	template := *d.Spec.Template.DeepCopy()
	hash := ComputeHash(&template, d.Status.CollisionCount)
	template.Labels = cloneAndAddLabel(d.Spec.Template.Labels, appsv1.DefaultDeploymentUniqueLabelKey, hash)
	newRS := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, controllerKind)},
			Labels:          template.Labels,
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        new(int32),
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        selectorWithLabel(d.Spec.Selector, appsv1.DefaultDeploymentUniqueLabelKey, hash),
			Template:        template,
		},
	}
	n := NewRSNewReplicas(d, append(append([]*appsv1.ReplicaSet(nil), olds...), newRS), newRS)
	*newRS.Spec.Replicas = n
	SetNewReplicaSetAnnotations(d, newRS, newRevision, false)

	alreadyExists := false
	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, newRS, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		alreadyExists = true
		rs, getErr := c.rsLister.ReplicaSets(d.Namespace).Get(newRS.Name)
		if getErr != nil {
			return nil, fmt.Errorf("get existing replicaset %s: %w", newRS.Name, getErr)
		}
		if ref := metav1.GetControllerOf(rs); ref != nil && ref.UID == d.UID && EqualIgnoreHash(&d.Spec.Template, &rs.Spec.Template) {
			created, err = rs, nil
			break
		}
		// A different template hashed to the same name: bump the
		// collision count and retry with the new hash.
		if d.Status.CollisionCount == nil {
			d.Status.CollisionCount = new(int32)
		}
		*d.Status.CollisionCount++
		if uerr := c.updateStatus(ctx, d); uerr == nil {
			c.log.Info("hash collision, bumped collisionCount", "deployment", d.Namespace+"/"+d.Name, "collisionCount", *d.Status.CollisionCount)
		}
		return nil, fmt.Errorf("create replicaset %s: %w", newRS.Name, err)
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil, err
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", newRS.Name, err)
		if HasProgressDeadline(d) {
			SetCondition(&d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonFailedRSCreate, msg, c.now()))
			_ = c.updateStatus(ctx, d)
		}
		c.recorder.Event(d, corev1.EventTypeWarning, ReasonFailedRSCreate, msg)
		return nil, fmt.Errorf("create replicaset %s: %w", newRS.Name, err)
	}
	if !alreadyExists && n > 0 {
		c.recorder.Eventf(d, corev1.EventTypeNormal, EventScalingReplicaSet, "Scaled up replica set %s from 0 to %d", created.Name, n)
	}
	if err := c.setRevision(ctx, d, newRevision); err != nil {
		return nil, err
	}
	if !alreadyExists && HasProgressDeadline(d) {
		SetCondition(&d.Status, NewCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewReplicaSet,
			fmt.Sprintf("Created new replica set %q", created.Name), c.now()))
		if err := c.updateStatus(ctx, d); err != nil {
			return nil, err
		}
	}
	return created, nil
}

// scaleReplicaSetAndRecordEvent scales rs to n (no-op when already there).
func (c *Controller) scaleReplicaSetAndRecordEvent(ctx context.Context, rs *appsv1.ReplicaSet, n int32, d *appsv1.Deployment) (bool, *appsv1.ReplicaSet, error) {
	if replicas(rs) == n {
		return false, rs, nil
	}
	op := "down"
	if replicas(rs) < n {
		op = "up"
	}
	return c.scaleReplicaSet(ctx, rs, n, d, op)
}

// scaleReplicaSet sets rs's replicas to n and its desired/max-replicas
// annotations to d's, recording ScalingReplicaSet when the size changes.
func (c *Controller) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, n int32, d *appsv1.Deployment, op string) (bool, *appsv1.ReplicaSet, error) {
	sizeChange := replicas(rs) != n
	maxReplicas := dreplicas(d) + MaxSurge(d)
	if !sizeChange && !ReplicasAnnotationsNeedUpdate(rs, dreplicas(d), maxReplicas) {
		return false, rs, nil
	}
	old := replicas(rs)
	rsCopy := rs.DeepCopy()
	rsCopy.Spec.Replicas = &n
	SetReplicasAnnotations(rsCopy, dreplicas(d), maxReplicas)
	out, err := c.client.AppsV1().ReplicaSets(rsCopy.Namespace).Update(ctx, rsCopy, metav1.UpdateOptions{})
	if err != nil {
		return false, rs, fmt.Errorf("scale replicaset %s to %d: %w", rs.Name, n, err)
	}
	if sizeChange {
		c.recorder.Eventf(d, corev1.EventTypeNormal, EventScalingReplicaSet, "Scaled %s replica set %s from %d to %d", op, rs.Name, old, n)
	}
	return sizeChange, out, nil
}

// syncScale handles paused Deployments and scaling events: resize the
// ReplicaSets without progressing a rollout, clean up old ones when
// paused, and write the status.
func (c *Controller) syncScale(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) error {
	newRS, olds, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rss, false)
	if err != nil {
		return err
	}
	if err := c.scale(ctx, d, newRS, olds); err != nil {
		return err
	}
	if d.Spec.Paused {
		if err := c.cleanupDeployment(ctx, olds, d); err != nil {
			return err
		}
	}
	return c.syncDeploymentStatus(ctx, append(olds, newRS), newRS, d)
}

// scale resizes d's ReplicaSets to d's replicas: the only active one
// takes all; a saturated new one leaves the old ones at zero; otherwise
// (rolling update) the change is shared out proportionally.
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet) error {
	if rs := FindActiveOrLatest(newRS, olds); rs != nil {
		if replicas(rs) == dreplicas(d) {
			return nil
		}
		_, _, err := c.scaleReplicaSetAndRecordEvent(ctx, rs, dreplicas(d), d)
		return err
	}
	if IsSaturated(d, newRS) {
		for _, old := range activeRSs(olds) {
			if _, _, err := c.scaleReplicaSetAndRecordEvent(ctx, old, 0, d); err != nil {
				return err
			}
		}
		return nil
	}
	if !isRollingUpdate(d) {
		return nil
	}
	active := activeRSs(append(append([]*appsv1.ReplicaSet(nil), olds...), newRS))
	sizes, op := ProportionalSizes(d, active)
	for _, rs := range active {
		if _, _, err := c.scaleReplicaSet(ctx, rs, sizes[rs.Name], d, op); err != nil {
			return err
		}
	}
	return nil
}

// cleanupDeployment deletes the oldest old ReplicaSets beyond
// revisionHistoryLimit that have no replicas and whose status is current.
func (c *Controller) cleanupDeployment(ctx context.Context, olds []*appsv1.ReplicaSet, d *appsv1.Deployment) error {
	if d.Spec.RevisionHistoryLimit == nil {
		return nil
	}
	var cleanable []*appsv1.ReplicaSet
	for _, rs := range olds {
		if rs != nil && rs.DeletionTimestamp == nil {
			cleanable = append(cleanable, rs)
		}
	}
	diff := int32(len(cleanable)) - *d.Spec.RevisionHistoryLimit
	if diff <= 0 {
		return nil
	}
	byRevision(cleanable)
	for _, rs := range cleanable[:diff] {
		if rs.Status.Replicas != 0 || replicas(rs) != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		c.log.Debug("deleting old replicaset", "deployment", d.Namespace+"/"+d.Name, "replicaset", rs.Name)
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &rs.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete old replicaset %s: %w", rs.Name, err)
		}
	}
	return nil
}

// syncStatusOnly writes the status of a Deployment being deleted.
func (c *Controller) syncStatusOnly(ctx context.Context, d *appsv1.Deployment, rss []*appsv1.ReplicaSet) error {
	newRS, olds, err := c.getAllReplicaSetsAndSyncRevision(ctx, d, rss, false)
	if err != nil {
		return err
	}
	return c.syncDeploymentStatus(ctx, append(olds, newRS), newRS, d)
}

// syncDeploymentStatus writes CalculateStatus when it changed.
func (c *Controller) syncDeploymentStatus(ctx context.Context, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) error {
	st := CalculateStatus(all, newRS, d, c.now())
	if statusEqual(d.Status, st) {
		return nil
	}
	d.Status = st
	return c.updateStatus(ctx, d)
}

// syncRolloutStatus writes RolloutStatus when it changed, and otherwise
// requeues a Deployment that may miss its progress deadline.
func (c *Controller) syncRolloutStatus(ctx context.Context, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) error {
	now := c.now()
	st := RolloutStatus(all, newRS, d, now)
	if statusEqual(d.Status, st) {
		if after := StuckRecheck(d, st, now); after >= 0 {
			c.queue.AddAfter(d.Namespace+"/"+d.Name, max(after, time.Second))
		}
		return nil
	}
	d.Status = st
	return c.updateStatus(ctx, d)
}
