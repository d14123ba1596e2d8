// Package podgc is the pod garbage collector, as Kubernetes' PodGC
// controller: every GCCheckPeriod (20 s) it force-deletes (grace period
// 0) the pods nothing else will ever remove:
//
//   - finished pods (Failed or Succeeded) beyond TerminatedPodGCThreshold,
//     the agent's evicted ones first, then the oldest;
//   - pods being deleted on a node that is not Ready and carries the
//     node.kubernetes.io/out-of-service taint (the node was declared shut
//     down: its agent will not confirm the deletion);
//   - pods bound to a node that no longer exists: a node missing from the
//     informer is quarantined for QuarantineTime (40 s) and then looked up
//     in the API before its pods count as orphaned;
//   - pods being deleted that were never bound to a node.
//
// A pod that has not finished is first patched (status subresource) to
// phase Failed — orphaned pods also get the DisruptionTarget condition,
// reason DeletionByPodGC — so that its owner counts it as failed (a Job's
// pod failure policy matches the condition) even while finalizers keep it.
// The patch and the deletion name the pod's UID: a pod created again under
// the same name is left alone. At most ten deletions run at once. The API
// server removes a pod deleted with grace period 0 at once, or, when
// finalizers remain (a Job's tracking finalizer), when they are removed;
// pods only waiting for their finalizers are not deleted again.
//
// As Kubernetes' collector it records no events; it logs what it deletes.
// The decisions are pure functions in decide.go.
package podgc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// Name is the controller's name (logs).
const Name = "pod-garbage-collector"

// deleteWorkers bounds the deletions running at once.
const deleteWorkers = 10

// The DisruptionTarget condition of a pod whose node is gone, as
// Kubernetes' collector sets it.
const (
	reasonDeletionByPodGC = "DeletionByPodGC"
	messageNodeGone       = "PodGC: node no longer exists"
)

// Options tune the collector.
type Options struct {
	// TerminatedPodGCThreshold is how many finished pods may exist before
	// the oldest are deleted; 0 or less disables that (not the other
	// collections). The controller manager passes the server's
	// terminated-pod-gc-threshold (default 12500, as Kubernetes').
	TerminatedPodGCThreshold int
	// GCCheckPeriod is the time between collections. Default 20s.
	GCCheckPeriod time.Duration
	// QuarantineTime is how long a node that pods are bound to may be
	// missing from the informer before the API is asked whether it
	// exists. Default 40s.
	QuarantineTime time.Duration
}

func (o Options) withDefaults() Options {
	if o.GCCheckPeriod <= 0 {
		o.GCCheckPeriod = 20 * time.Second
	}
	if o.QuarantineTime <= 0 {
		o.QuarantineTime = 40 * time.Second
	}
	return o
}

// Controller is the pod garbage collector. Build it with New; Run it once.
type Controller struct {
	client kubernetes.Interface
	opts   Options
	log    *slog.Logger
	pods   corelisters.PodLister
	nodes  corelisters.NodeLister
	synced []cache.InformerSynced
	now    func() time.Time

	mu sync.Mutex // guards q, which tests read while Run runs
	q  quarantine
	// passes counts the finished collections.
	passes atomic.Int64
}

var _ controller.Controller = (*Controller)(nil)

// New builds the collector on factory's Pod and Node informers; the caller
// starts the factory after every controller is built.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	podInf, nodeInf := factory.Core().V1().Pods(), factory.Core().V1().Nodes()
	return &Controller{
		client: client,
		opts:   opts.withDefaults(),
		log:    log.With("controller", Name),
		pods:   podInf.Lister(),
		nodes:  nodeInf.Lister(),
		synced: []cache.InformerSynced{podInf.Informer().HasSynced, nodeInf.Informer().HasSynced},
		now:    time.Now,
		q:      quarantine{},
	}
}

// Name implements controller.Controller.
func (c *Controller) Name() string { return Name }

// Run collects every GCCheckPeriod (counted from the end of the last
// collection) until ctx ends; a collection under way when it ends is
// waited for. workers is not used: deletions run on a pool of ten,
// whatever the manager's worker count.
func (c *Controller) Run(ctx context.Context, _ int) error {
	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), c.synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", Name, context.Cause(ctx))
	}
	wait.UntilWithContext(ctx, c.gc, c.opts.GCCheckPeriod)
	return nil
}

// gc is one collection.
func (c *Controller) gc(ctx context.Context) {
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		c.log.Error("list pods", "err", err)
		return
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		c.log.Error("list nodes", "err", err)
		return
	}
	c.gcTerminated(ctx, pods)
	c.gcTerminating(ctx, pods)
	c.gcOrphaned(ctx, pods, nodes)
	c.gcUnscheduledTerminating(ctx, pods)
	c.passes.Add(1)
}

func (c *Controller) gcTerminated(ctx context.Context, pods []*corev1.Pod) {
	del := terminatedToDelete(pods, c.opts.TerminatedPodGCThreshold)
	if len(del) == 0 {
		return
	}
	c.log.Info("garbage collecting finished pods", "numPods", len(del), "threshold", c.opts.TerminatedPodGCThreshold)
	c.deleteAll(ctx, del, nil, "")
}

func (c *Controller) gcTerminating(ctx context.Context, pods []*corev1.Pod) {
	del := terminatingOutOfService(pods, func(name string) (*corev1.Node, bool) {
		n, err := c.nodes.Get(name)
		return n, err == nil
	})
	if len(del) == 0 {
		return
	}
	c.log.Info("garbage collecting pods terminating on out-of-service nodes", "numPods", len(del))
	c.deleteAll(ctx, del, nil, "")
}

// gcOrphaned deletes the pods bound to nodes that do not exist.
func (c *Controller) gcOrphaned(ctx context.Context, pods []*corev1.Pod, nodes []*corev1.Node) {
	existing := sets.New[string]()
	for _, n := range nodes {
		existing.Insert(n.Name)
	}
	now := c.now()
	c.mu.Lock()
	c.q.add(missingNodes(pods, existing), now, c.opts.QuarantineTime)
	due := c.q.takeDue(now)
	c.mu.Unlock()
	deleted := sets.New[string]()
	for _, name := range due {
		if existing.Has(name) {
			continue
		}
		// A live read: the informer may lag behind a node created again.
		_, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			deleted.Insert(name)
		case err != nil:
			// Quarantined again by the next collection if still missing.
			c.log.Error("get node", "node", name, "err", err)
		}
	}
	del := orphaned(pods, deleted)
	for _, p := range del {
		c.log.Debug("found orphaned pod bound to a deleted node, deleting", "pod", key(p), "node", p.Spec.NodeName)
	}
	c.deleteAll(ctx, del, &corev1.PodCondition{
		Type:    corev1.DisruptionTarget,
		Status:  corev1.ConditionTrue,
		Reason:  reasonDeletionByPodGC,
		Message: messageNodeGone,
	}, "orphaned")
}

// gcUnscheduledTerminating deletes the pods being deleted that were never
// bound to a node.
func (c *Controller) gcUnscheduledTerminating(ctx context.Context, pods []*corev1.Pod) {
	del := unscheduledTerminating(pods)
	for _, p := range del {
		c.log.Debug("found unscheduled terminating pod not bound to any node, deleting", "pod", key(p))
	}
	c.deleteAll(ctx, del, nil, "unscheduled terminating")
}

// deleteAll marks and force-deletes pods, deleteWorkers at a time, and
// waits for them. what, if set, names the kind of pod in the log line of
// each deletion that succeeded.
func (c *Controller) deleteAll(ctx context.Context, pods []*corev1.Pod, cond *corev1.PodCondition, what string) {
	workqueue.ParallelizeUntil(ctx, deleteWorkers, len(pods), func(i int) {
		p := pods[i]
		err := c.markFailedAndDelete(ctx, p, cond)
		switch {
		case err == nil:
			if what != "" {
				c.log.Info("forced deletion of "+what+" pod succeeded", "pod", key(p))
			}
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// Gone already, or another pod of that name now.
			c.log.Debug("pod gone or replaced before its deletion", "pod", key(p), "uid", p.UID, "err", err)
		default:
			c.log.Error("force delete pod", "pod", key(p), "err", err)
		}
	})
}

// markFailedAndDelete patches a pod that has not finished to phase Failed
// (with cond, if set) and deletes it with grace period 0, both only if it
// is still the pod of p's UID.
func (c *Controller) markFailedAndDelete(ctx context.Context, p *corev1.Pod, cond *corev1.PodCondition) error {
	c.log.Info("PodGC is force deleting Pod", "pod", key(p))
	if st, ok := failedStatus(p, cond, c.now()); ok {
		patch, err := statusPatch(p, st)
		if err != nil {
			return fmt.Errorf("mark pod %s failed: %w", key(p), err)
		}
		_, err = c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
		if uidMismatch(err) {
			return apierrors.NewConflict(corev1.Resource("pods"), p.Name, err)
		}
		if err != nil {
			return fmt.Errorf("mark pod %s failed: %w", key(p), err)
		}
	}
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: &p.UID},
	})
	if err != nil {
		return fmt.Errorf("delete pod %s: %w", key(p), err)
	}
	return nil
}

// statusPatch is the strategic merge patch from p's status to st, with p's
// UID: the API server refuses it (the UID is immutable) for another pod of
// the same name, as Kubernetes' PatchPodStatus.
func statusPatch(p *corev1.Pod, st corev1.PodStatus) ([]byte, error) {
	before, err := json.Marshal(corev1.Pod{Status: p.Status})
	if err != nil {
		return nil, err
	}
	after, err := json.Marshal(corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: p.UID}, Status: st})
	if err != nil {
		return nil, err
	}
	return strategicpatch.CreateTwoWayMergePatch(before, after, corev1.Pod{})
}

// uidMismatch reports whether err refuses a patch for naming another UID
// than the object's.
func uidMismatch(err error) bool {
	var st apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &st) || st.Status().Details == nil {
		return false
	}
	return slices.ContainsFunc(st.Status().Details.Causes, func(c metav1.StatusCause) bool { return c.Field == "metadata.uid" })
}

func key(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }
