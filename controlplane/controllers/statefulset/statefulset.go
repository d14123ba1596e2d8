// Package statefulset is wasmfleet's StatefulSet controller, following
// Kubernetes' (pkg/controller/statefulset): it keeps pods <set>-<ordinal>
// for the ordinals from spec.ordinals.start, each with a stable identity
// (the statefulset.kubernetes.io/pod-name and apps.kubernetes.io/pod-index
// labels, spec.hostname = its name, spec.subdomain = spec.serviceName);
// with OrderedReady it creates them one at a time in ordinal order, each
// once the ones below are Running and Ready, and removes them from the
// highest ordinal down, stopping while a pod is unhealthy; with Parallel
// it creates and removes them all at once. A failed pod is deleted and
// made again. Templates are kept as ControllerRevisions
// (controller.Revisions): a RollingUpdate replaces pods from the highest
// ordinal down to spec.updateStrategy.rollingUpdate.partition, as many at
// once as keep the unavailable replicas within maxUnavailable (default 1;
// kube's MaxUnavailableStatefulSet, on by default); OnDelete makes new
// pods at the update revision only when old ones are deleted. The status
// counts replicas, ready, available (minReadySeconds), current and
// updated pods and names both revisions; the rollout ends when every pod
// is updated and ready.
//
// wasmfleet serves no PersistentVolumeClaims (the API refuses
// volumeClaimTemplates), so there is no storage to create or retain.
package statefulset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/replicaset"
)

// Name is the controller's name (queue, logs, event source).
const Name = "statefulset-controller"

// maxCollisions bounds the hashes tried for one template.
const maxCollisions = 8

// Controller is the StatefulSet controller. Create it with New; Run it once.
type Controller struct {
	client    kubernetes.Interface
	setLister appslisters.StatefulSetLister
	podLister corelisters.PodLister
	revisions controller.Revisions
	synced    []cache.InformerSynced

	queue       *controller.Queue
	exp         *controller.Expectations
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	log         *slog.Logger
	now         func() time.Time
}

var _ controller.Controller = (*Controller)(nil)

// New returns a StatefulSet controller using factory's StatefulSet, Pod
// and ControllerRevision informers, whose event handlers it registers now:
// start factory after New (Run waits for the caches).
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	setInf := factory.Apps().V1().StatefulSets()
	podInf := factory.Core().V1().Pods()
	crInf := factory.Apps().V1().ControllerRevisions()
	b := record.NewBroadcaster()
	c := &Controller{
		client:      client,
		setLister:   setInf.Lister(),
		podLister:   podInf.Lister(),
		revisions:   controller.Revisions{Client: client, Lister: crInf.Lister(), Kind: controllerKind, HashLabel: controller.HistoryHashLabel},
		synced:      []cache.InformerSynced{setInf.Informer().HasSynced, podInf.Informer().HasSynced, crInf.Informer().HasSynced},
		exp:         controller.NewExpectations(),
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Name}),
		log:         log.With("controller", Name),
		now:         time.Now,
	}
	c.queue = controller.NewQueue(Name, log, c.sync)
	setInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.queue.Enqueue,
		UpdateFunc: func(_, cur any) { c.queue.Enqueue(cur) },
		DeleteFunc: c.queue.Enqueue,
	})
	podInf.Informer().AddEventHandler(controller.OwnedPodHandlers(c.resolve, c.exp, c.queue, c.enqueueMatching))
	return c
}

// Name implements controller.Controller.
func (c *Controller) Name() string { return Name }

// Run records events to the API and runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer controller.RecordEvents(c.broadcaster, c.client)()
	return c.queue.Run(ctx, workers, c.synced...)
}

func setKey(set *appsv1.StatefulSet) string { return set.Namespace + "/" + set.Name }

func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) (*appsv1.StatefulSet, bool) {
	return controller.Resolve(ref, controllerKind, c.setLister.StatefulSets(ns).Get)
}

// enqueueMatching queues the sets an orphan could be adopted by.
func (c *Controller) enqueueMatching(pod *corev1.Pod) {
	all, err := c.setLister.StatefulSets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, set := range all {
		sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) || !isMemberOf(set, pod) {
			continue
		}
		c.queue.Enqueue(set)
	}
}

// sync reconciles one StatefulSet.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	set, err := c.setLister.StatefulSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Delete(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get statefulset %s: %w", key, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil // the apiserver refuses such selectors
	}
	pods, err := c.claimPods(ctx, set, sel)
	if err != nil {
		return err
	}
	owned, err := c.revisions.Claim(ctx, set, sel, func(ctx context.Context) error { return c.recheck(ctx, set) })
	if err != nil {
		return err
	}
	update, collisionCount, err := c.updateRevision(ctx, set, owned)
	if err != nil {
		return err
	}
	s := snapshot{set: set, pods: pods, update: update, currentTemplate: &set.Spec.Template, now: c.now()}
	s.current = update
	for _, cr := range owned {
		if cr.Name == set.Status.CurrentRevision && cr.Name != update.Name {
			tmpl, err := controller.TemplateOf(cr)
			if err != nil {
				return err
			}
			s.current, s.currentTemplate = cr, tmpl
		}
	}
	// A set being deleted gets only its status (the garbage collector
	// removes its pods). The status and the history are written even when
	// a pod write failed, as kube's performUpdate and UpdateStatefulSet.
	var actErr error
	if set.DeletionTimestamp == nil && c.exp.Satisfied(key) {
		actErr = c.act(ctx, set, plan(s))
	}
	statusErr := c.updateStatus(ctx, s, collisionCount)
	return errors.Join(actErr, statusErr, c.truncateHistory(ctx, set, owned, s))
}

// updateRevision records the revision of set's template and returns it
// with the collision count: an owned revision holding the template is
// made the newest (a rollback), else one is made, named by the hash of
// the template and the collision count, which is raised while that name
// is another owner's or another template's.
func (c *Controller) updateRevision(ctx context.Context, set *appsv1.StatefulSet, owned []*appsv1.ControllerRevision) (*appsv1.ControllerRevision, int32, error) {
	data, err := controller.TemplatePatch(&set.Spec.Template)
	if err != nil {
		return nil, 0, err
	}
	var collisionCount int32
	if set.Status.CollisionCount != nil {
		collisionCount = *set.Status.CollisionCount
	}
	for i := len(owned) - 1; i >= 0; i-- {
		if hash, ok := strings.CutPrefix(owned[i].Name, controller.RevisionName(set.Name, "")); ok && controller.EqualRevisionData(owned[i].Data.Raw, data) {
			cr, err := c.revisions.Record(ctx, set, &set.Spec.Template, hash, data, owned)
			return cr, collisionCount, err
		}
	}
	for range maxCollisions {
		hash := controller.HashRevision(data, &collisionCount)
		cr, err := c.revisions.Record(ctx, set, &set.Spec.Template, hash, data, owned)
		if err != nil {
			return nil, 0, err
		}
		if metav1.IsControlledBy(cr, set) && controller.EqualRevisionData(cr.Data.Raw, data) {
			return cr, collisionCount, nil
		}
		collisionCount++
	}
	return nil, 0, fmt.Errorf("statefulset %s: %d revision hash collisions", setKey(set), maxCollisions)
}

// truncateHistory keeps spec.revisionHistoryLimit revisions besides the
// live ones: the current and update revisions and those of pods.
func (c *Controller) truncateHistory(ctx context.Context, set *appsv1.StatefulSet, owned []*appsv1.ControllerRevision, s snapshot) error {
	live := map[string]bool{s.current.Name: true, s.update.Name: true}
	for _, p := range s.pods {
		live[revisionOf(p)] = true
	}
	limit := int32(10)
	if set.Spec.RevisionHistoryLimit != nil {
		limit = *set.Spec.RevisionHistoryLimit
	}
	return c.revisions.Truncate(ctx, set, owned, limit, func(cr *appsv1.ControllerRevision) bool { return live[cr.Name] })
}

// act makes the planned writes stage by stage, as kube's runForAll and
// rolling update: with OrderedReady, and for the rolling update, one at a
// time; otherwise the replicas' writes, then the condemned pods' deletes,
// in slow-start batches (1, 2, 4, …; replicaset.SlowStartBatch). The
// first failed write, or batch, ends the pass: the writes not made are no
// longer expected.
func (c *Controller) act(ctx context.Context, set *appsv1.StatefulSet, acts []action) error {
	if len(acts) == 0 {
		return nil
	}
	key := setKey(set)
	adds, dels := expected(acts)
	c.exp.Expect(key, adds, dels)
	burst := set.Spec.PodManagementPolicy == appsv1.ParallelPodManagement
	for len(acts) > 0 {
		n := 1
		for n < len(acts) && acts[n].stage == acts[0].stage {
			n++
		}
		var (
			tried atomic.Int32
			err   error
		)
		if burst && acts[0].stage != updateStage {
			_, err = replicaset.SlowStartBatch(n, replicaset.SlowStartInitialBatchSize, func(i int) error {
				tried.Add(1)
				return c.do(ctx, set, acts[i])
			})
		} else {
			for i := range n {
				tried.Add(1)
				if err = c.do(ctx, set, acts[i]); err != nil {
					break
				}
			}
		}
		acts = acts[tried.Load():]
		if err != nil {
			adds, dels = expected(acts)
			for range adds {
				c.exp.CreationObserved(key)
			}
			for range dels {
				c.exp.DeletionObserved(key)
			}
			return fmt.Errorf("statefulset %s: %w", key, err)
		}
	}
	return nil
}

// expected counts the creates and deletes among acts.
func expected(acts []action) (adds, dels int) {
	for _, a := range acts {
		switch a.kind {
		case create:
			adds++
		case remove, recreate:
			dels++
		}
	}
	return adds, dels
}

// do makes one write and records its event as Kubernetes'
// StatefulPodControl does.
func (c *Controller) do(ctx context.Context, set *appsv1.StatefulSet, a action) error {
	key := setKey(set)
	pods := c.client.CoreV1().Pods(set.Namespace)
	switch a.kind {
	case create:
		_, err := pods.Create(ctx, a.pod, metav1.CreateOptions{})
		if err != nil {
			c.exp.CreationObserved(key)
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return nil
			}
		}
		return c.event(set, "create", a.pod, err)
	case recreate, remove:
		// A failed or succeeded pod gets only the delete's event, as in
		// kube's processReplica.
		err := pods.Delete(ctx, a.pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &a.pod.UID}})
		if err != nil {
			c.exp.DeletionObserved(key)
			if apierrors.IsNotFound(err) {
				return nil
			}
		}
		return c.event(set, "delete", a.pod, err)
	case relabel:
		p := a.pod.DeepCopy()
		setIdentity(p)
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": p.Labels, "uid": p.UID}})
		if err == nil {
			_, err = pods.Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		}
		if apierrors.IsNotFound(err) {
			return nil
		}
		return c.event(set, "update", p, err)
	}
	return nil
}

// event records the outcome of verb on pod: SuccessfulCreate "create Pod
// web-0 in StatefulSet web successful", or FailedCreate with the error.
func (c *Controller) event(set *appsv1.StatefulSet, verb string, pod *corev1.Pod, err error) error {
	title := strings.ToUpper(verb[:1]) + verb[1:]
	if err != nil {
		c.recorder.Eventf(set, corev1.EventTypeWarning, "Failed"+title, "%s Pod %s in StatefulSet %s failed error: %v", verb, pod.Name, set.Name, err)
		return fmt.Errorf("%s pod %s: %w", verb, pod.Name, err)
	}
	c.recorder.Eventf(set, corev1.EventTypeNormal, "Successful"+title, "%s Pod %s in StatefulSet %s successful", verb, pod.Name, set.Name)
	return nil
}

// claimPods returns set's pods: those it controls that it still selects,
// and the orphans it selects whose names make them its members, which it
// adopts; it releases those it controls but no longer selects.
func (c *Controller) claimPods(ctx context.Context, set *appsv1.StatefulSet, sel labels.Selector) ([]*corev1.Pod, error) {
	all, err := c.podLister.Pods(set.Namespace).List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var (
		claimed []*corev1.Pod
		checked bool
	)
	for _, p := range all {
		matches := sel.Matches(labels.Set(p.Labels)) && isMemberOf(set, p)
		ref := controller.ControllerOf(p)
		switch {
		case ref != nil && ref.UID != set.UID:
			continue
		case ref != nil && !matches:
			if p.DeletionTimestamp == nil {
				if err := c.release(ctx, set, p); err != nil {
					return nil, err
				}
			}
			continue
		case ref == nil:
			// Kube's ClaimObject adopts no orphan for a controller being
			// deleted.
			if !matches || p.DeletionTimestamp != nil || set.DeletionTimestamp != nil {
				continue
			}
			if !checked {
				if err := c.recheck(ctx, set); err != nil {
					return nil, err
				}
				checked = true
			}
			adopted, err := c.adopt(ctx, set, p)
			if err != nil {
				if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || apierrors.IsInvalid(err) {
					continue
				}
				return nil, err
			}
			p = adopted
		}
		claimed = append(claimed, p)
	}
	return claimed, nil
}

// recheck is kube's RecheckDeletionTimestamp: adopt only for a set that
// is live and not being deleted, as a live read says.
func (c *Controller) recheck(ctx context.Context, set *appsv1.StatefulSet) error {
	fresh, err := c.client.AppsV1().StatefulSets(set.Namespace).Get(ctx, set.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("recheck statefulset before adopting: %w", err)
	}
	if fresh.UID != set.UID || fresh.DeletionTimestamp != nil {
		return fmt.Errorf("statefulset %s changed or is being deleted: not adopting", setKey(set))
	}
	return nil
}

func (c *Controller) adopt(ctx context.Context, set *appsv1.StatefulSet, p *corev1.Pod) (*corev1.Pod, error) {
	patch, err := replicaset.AdoptPatch(set, controllerKind, p.UID)
	if err != nil {
		return nil, err
	}
	adopted, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("adopt pod %s: %w", p.Name, err)
	}
	return adopted, nil
}

func (c *Controller) release(ctx context.Context, set *appsv1.StatefulSet, p *corev1.Pod) error {
	_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, replicaset.ReleasePatch(set.UID, p.UID), metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
		return fmt.Errorf("release pod %s: %w", p.Name, err)
	}
	return nil
}

// updateStatus writes the status computed from s when it changed,
// and requeues the set when a ready pod becomes available later.
func (c *Controller) updateStatus(ctx context.Context, s snapshot, collisionCount int32) error {
	set := s.set
	// The pods as this pass found them: the events of its own writes
	// bring the next pass, which counts them.
	st := computeStatus(s, collisionCount)
	if !apiequality.Semantic.DeepEqual(st, set.Status) {
		cp := set.DeepCopy()
		cp.Status = st
		sets := c.client.AppsV1().StatefulSets(set.Namespace)
		_, err := controller.WriteStatus(cp,
			func(x *appsv1.StatefulSet) (*appsv1.StatefulSet, error) {
				return sets.UpdateStatus(ctx, x, metav1.UpdateOptions{})
			},
			func() (*appsv1.StatefulSet, error) { return sets.Get(ctx, set.Name, metav1.GetOptions{}) },
			func(latest, from *appsv1.StatefulSet) { latest.Status = from.Status })
		if err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("update status of statefulset %s: %w", setKey(set), err)
		}
	}
	if set.Spec.MinReadySeconds > 0 && st.ReadyReplicas != st.AvailableReplicas {
		c.queue.AddAfter(setKey(set), time.Duration(set.Spec.MinReadySeconds)*time.Second)
	}
	return nil
}
