package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	nodelisters "k8s.io/client-go/listers/node/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// Event reasons and condition reasons kube-scheduler uses.
const (
	EventScheduled       = "Scheduled"
	EventFailedScheduled = "FailedScheduling"
)

// DefaultBinders is how many bindings run at once by default: a binding is
// an etcd round trip, and etcd batches concurrent writes into one fsync.
// With 64 a backlog of 10,000 pods on 5,000 nodes was bound at 904-1227
// pods/s over five runs of `wasmfleet bench scheduler` with CPU to spare;
// with 128, at 1085-1279. (kube-scheduler binds each pod in a goroutine
// of its own, without a bound.)
const DefaultBinders = 128

// Options configures a Scheduler; zero values take the defaults.
type Options struct {
	// SchedulerName is the spec.schedulerName of the pods this scheduler
	// places, and the source of its events (default "default-scheduler").
	SchedulerName string
	// Binders is how many bindings (and status writes) run concurrently
	// (default DefaultBinders).
	Binders int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ImageArchitectures, when set, keeps container pods (runtime class
	// "runc") off nodes whose architecture their images lack. If it is also
	// an ImageLookups, container pods whose images are being looked up for
	// the first time are held until the lookups end.
	ImageArchitectures ImageArchitectures
	// PercentageOfNodesToScore: see CoreOptions (0 = kube's adaptive).
	PercentageOfNodesToScore int32
	// InitialBackoff and MaxBackoff bound the retry back-off of pods that
	// did not fit (defaults 1 s and 10 s, as kube's).
	InitialBackoff, MaxBackoff time.Duration
}

func (o *Options) defaults() {
	if o.SchedulerName == "" {
		o.SchedulerName = corev1.DefaultSchedulerName
	}
	if o.Binders <= 0 {
		o.Binders = DefaultBinders
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = DefaultInitialBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.InitialBackoff {
		o.MaxBackoff = o.InitialBackoff
	}
}

// Scheduler binds the unscheduled pods of its scheduler name to nodes. Its
// state lives for one Run; Run may be called again after it returned (as
// leader election does), but not concurrently.
type Scheduler struct {
	client       kubernetes.Interface
	factory      informers.SharedInformerFactory
	podInformer  cache.SharedIndexInformer
	nodeInformer cache.SharedIndexInformer
	podLister    corelisters.PodLister
	rcInformer   cache.SharedIndexInformer
	handlers     RuntimeHandlers
	opts         Options
	log          *slog.Logger
}

// New returns a scheduler using client for bindings, status and events, and
// the pod and node informers of factory (which New registers; start the
// factory after New, or let Run start it).
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Scheduler, error) {
	if client == nil || factory == nil {
		return nil, errors.New("scheduler: client and informer factory are required")
	}
	opts.defaults()
	pods := factory.Core().V1().Pods()
	nodes := factory.Core().V1().Nodes()
	rcs := factory.Node().V1().RuntimeClasses()
	return &Scheduler{
		client:       client,
		factory:      factory,
		podInformer:  pods.Informer(),
		nodeInformer: nodes.Informer(),
		podLister:    pods.Lister(),
		rcInformer:   rcs.Informer(),
		handlers:     listerHandlers(rcs.Lister()),
		opts:         opts,
		log:          opts.Logger.With("scheduler", opts.SchedulerName),
	}, nil
}

// listerHandlers maps runtime classes to their handlers through lister.
func listerHandlers(lister nodelisters.RuntimeClassLister) RuntimeHandlers {
	return func(class string) string {
		if rc, err := lister.Get(class); err == nil {
			return rc.Handler
		}
		return ""
	}
}

// Run schedules until ctx ends. It starts the factory's informers that are
// not running yet (with ctx), waits for the caches, then runs the
// scheduling loop, the binders and the back-off flusher; it returns after
// all of them stopped, with nil when ctx ended.
func (s *Scheduler) Run(ctx context.Context) error {
	r := &run{
		s:     s,
		cache: &schedCache{snap: NewSnapshot(), assumed: map[types.UID]struct{}{}},
		queue: newSchedulingQueue(s.opts.InitialBackoff, s.opts.MaxBackoff, nil),
		core: NewCore(CoreOptions{
			PercentageOfNodesToScore: s.opts.PercentageOfNodesToScore,
			ImageArchitectures:       s.opts.ImageArchitectures,
			RuntimeHandlers:          s.handlers,
		}),
	}
	r.lookups, _ = s.opts.ImageArchitectures.(ImageLookups)
	defer r.queue.Close()

	nodeReg, err := s.nodeInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    r.onNodeAdd,
		UpdateFunc: r.onNodeUpdate,
		DeleteFunc: r.onNodeDelete,
	})
	if err != nil {
		return fmt.Errorf("scheduler: watch nodes: %w", err)
	}
	defer s.nodeInformer.RemoveEventHandler(nodeReg)
	podReg, err := s.podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.onPod(nil, obj) },
		UpdateFunc: r.onPod,
		DeleteFunc: r.onPodDelete,
	})
	if err != nil {
		return fmt.Errorf("scheduler: watch pods: %w", err)
	}
	defer s.podInformer.RemoveEventHandler(podReg)

	s.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), s.podInformer.HasSynced, s.nodeInformer.HasSynced, s.rcInformer.HasSynced, podReg.HasSynced, nodeReg.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("scheduler: caches did not sync")
	}

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.client.CoreV1().Events("")})
	r.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: s.opts.SchedulerName})

	s.log.Info("scheduler started", "binders", s.opts.Binders)
	r.work = make(chan func(), s.opts.Binders)
	var wg sync.WaitGroup
	for range s.opts.Binders {
		wg.Go(func() {
			for f := range r.work {
				f()
			}
		})
	}
	wg.Go(func() {
		t := time.NewTicker(flushInterval(s.opts.InitialBackoff))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.queue.Flush()
			}
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		r.queue.Close()
	})
	for {
		pod := r.queue.Pop()
		if pod == nil {
			break
		}
		r.scheduleOne(ctx, pod)
	}
	close(r.work)
	wg.Wait()
	r.waiters.Wait()
	s.log.Info("scheduler stopped")
	return nil
}

// flushInterval is how often waiting pods are checked for the end of their
// back-off: a tenth of the initial back-off, within [10 ms, 100 ms].
func flushInterval(initial time.Duration) time.Duration {
	return min(max(initial/10, 10*time.Millisecond), 100*time.Millisecond)
}

// run is the state of one Scheduler.Run.
type run struct {
	s        *Scheduler
	cache    *schedCache
	queue    *schedulingQueue
	core     *Core
	recorder record.EventRecorder
	work     chan func()
	lookups  ImageLookups   // Options.ImageArchitectures if it is one
	waiters  sync.WaitGroup // of held pods' image lookups
}

// scheduleOne decides pod's node, assumes it there and hands the binding to
// a binder; or records why it fits nowhere and requeues it.
func (r *run) scheduleOne(ctx context.Context, queued *corev1.Pod) {
	key := podKey(queued)
	pod, err := r.s.podLister.Pods(queued.Namespace).Get(queued.Name)
	if err != nil || pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil || !r.responsible(pod) {
		r.queue.Done(key) // gone, bound, or not ours any more
		return
	}
	if r.holdForImages(ctx, pod) {
		return
	}
	node, err := r.cache.scheduleAndAssume(r.core, pod)
	if errors.Is(err, errAlreadyCounted) {
		r.queue.Done(key)
		return
	}
	if err != nil {
		r.failed(ctx, pod, err)
		return
	}
	r.submit(ctx, func() { r.bind(ctx, pod, node) }, func() {
		r.cache.forget(pod.UID)
		r.queue.Done(key)
	})
}

// submit hands f to a binder, or calls cancelled if ctx ends first.
func (r *run) submit(ctx context.Context, f, cancelled func()) {
	select {
	case r.work <- f:
	case <-ctx.Done():
		if cancelled != nil {
			cancelled()
		}
	}
}

// failed requeues pod after a failed attempt and records why: a Warning
// FailedScheduling event and the PodScheduled=False condition.
func (r *run) failed(ctx context.Context, pod *corev1.Pod, err error) {
	wait := r.queue.Requeue(podKey(pod))
	reason := corev1.PodReasonUnschedulable
	var fe *FitError
	if !errors.As(err, &fe) && !errors.Is(err, ErrNoNodesAvailable) {
		reason = corev1.PodReasonSchedulerError
	}
	msg := err.Error()
	r.s.log.Debug("pod did not fit", "pod", podKey(pod), "reason", msg, "retryIn", wait)
	r.recorder.Event(pod, corev1.EventTypeWarning, EventFailedScheduled, msg)
	r.submit(ctx, func() { r.setScheduledFalse(ctx, pod, reason, msg) }, nil)
}

// setScheduledFalse writes PodScheduled=False with reason and message on
// pod unless it already says so. A conflict retries the pod soon.
func (r *run) setScheduledFalse(ctx context.Context, pod *corev1.Pod, reason, msg string) {
	if cur, err := r.s.podLister.Pods(pod.Namespace).Get(pod.Name); err == nil && cur.UID == pod.UID {
		pod = cur
	}
	if pod.Spec.NodeName != "" {
		return
	}
	cp := pod.DeepCopy()
	if !setPodScheduledCondition(&cp.Status, reason, msg, metav1.Now()) {
		return
	}
	_, err := r.s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	switch {
	case err == nil, ctx.Err() != nil, apierrors.IsNotFound(err):
	case apierrors.IsConflict(err):
		r.queue.Activate(podKey(pod)) // try again with a fresher pod
	default:
		r.s.log.Warn("update pod status", "pod", podKey(pod), "err", err)
	}
}

// setPodScheduledCondition sets PodScheduled=False/reason/msg in st as
// kube's UpdatePodCondition does (the transition time changes only with
// the status) and reports whether anything changed.
func setPodScheduledCondition(st *corev1.PodStatus, reason, msg string, now metav1.Time) bool {
	c := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: reason, Message: msg, LastTransitionTime: now}
	for i := range st.Conditions {
		old := &st.Conditions[i]
		if old.Type != corev1.PodScheduled {
			continue
		}
		if old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
			return false
		}
		if old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		*old = c
		return true
	}
	st.Conditions = append(st.Conditions, c)
	return true
}

// bind posts pod's binding to node. On failure it forgets the assumption,
// lets waiting pods retry (the node has room again) and requeues pod.
func (r *run) bind(ctx context.Context, pod *corev1.Pod, node string) {
	key := podKey(pod)
	err := r.s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}, metav1.CreateOptions{})
	if err == nil {
		r.queue.Done(key)
		r.recorder.Eventf(pod, corev1.EventTypeNormal, EventScheduled, "Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, node)
		return
	}
	r.cache.forget(pod.UID)
	r.queue.MoveAll()
	if ctx.Err() != nil || apierrors.IsNotFound(err) {
		r.queue.Done(key)
		return
	}
	r.s.log.Info("binding failed", "pod", key, "node", node, "err", err)
	r.queue.Requeue(key)
	r.recorder.Eventf(pod, corev1.EventTypeWarning, EventFailedScheduled, "Binding rejected: %v", err)
}

func (r *run) responsible(pod *corev1.Pod) bool {
	return pod.Spec.SchedulerName == r.s.opts.SchedulerName
}

func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// onPod handles a pod added (old nil) or updated: bound pods are counted on
// their nodes (confirming our assumptions), unbound pods of ours queued.
func (r *run) onPod(oldObj, obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := podKey(pod)
	if pod.Spec.NodeName != "" {
		r.queue.Delete(key)
		if terminal(pod) {
			if r.cache.removePod(pod.UID) {
				r.queue.MoveAll() // its resources are free
			}
			return
		}
		r.cache.addPod(pod)
		return
	}
	if terminal(pod) || pod.DeletionTimestamp != nil || !r.responsible(pod) || len(pod.Spec.SchedulingGates) > 0 {
		r.queue.Delete(key)
		return
	}
	if r.cache.isAssumed(pod.UID) {
		return // being bound; this is an older version
	}
	r.queue.Add(pod)
}

func (r *run) onPodDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	r.queue.Delete(podKey(pod))
	if r.cache.removePod(pod.UID) {
		r.queue.MoveAll()
	}
}

func (r *run) onNodeAdd(obj any) {
	if node, ok := obj.(*corev1.Node); ok {
		r.cache.setNode(node)
		r.queue.MoveAll()
	}
}

func (r *run) onNodeUpdate(oldObj, obj any) {
	old, ok1 := oldObj.(*corev1.Node)
	node, ok2 := obj.(*corev1.Node)
	if !ok1 || !ok2 {
		return
	}
	r.cache.setNode(node)
	if nodeSchedulingChanged(old, node) {
		r.queue.MoveAll()
	}
}

func (r *run) onNodeDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if node, ok := obj.(*corev1.Node); ok {
		r.cache.removeNode(node.Name)
	}
}

// nodeSchedulingChanged reports a node change that may let pods fit:
// allocatable, labels, taints, cordon or the Ready condition (heartbeats
// do not count).
func nodeSchedulingChanged(old, cur *corev1.Node) bool {
	ready := func(n *corev1.Node) corev1.ConditionStatus {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status
			}
		}
		return ""
	}
	return old.Spec.Unschedulable != cur.Spec.Unschedulable ||
		!maps.Equal(old.Labels, cur.Labels) ||
		!equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) ||
		!equality.Semantic.DeepEqual(old.Status.Allocatable, cur.Status.Allocatable) ||
		ready(old) != ready(cur)
}

// errAlreadyCounted: the pod is bound according to the cache already.
var errAlreadyCounted = errors.New("pod already counted on a node")

// schedCache guards the Snapshot and remembers which pods in it are only
// assumed (decided, binding not yet seen by the informer). Safe for
// concurrent use.
type schedCache struct {
	mu      sync.Mutex
	snap    *Snapshot
	assumed map[types.UID]struct{}
}

// scheduleAndAssume runs core on the snapshot and assumes pod on the node
// it picks.
func (c *schedCache) scheduleAndAssume(core *Core, pod *corev1.Pod) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap.PodNode(pod.UID) != "" {
		return "", errAlreadyCounted
	}
	node, err := core.Schedule(pod, c.snap)
	if err != nil {
		return "", err
	}
	assumed := *pod // shallow: only Spec.NodeName differs, the rest is shared read-only
	assumed.Spec.NodeName = node
	c.snap.AddPod(&assumed)
	c.assumed[pod.UID] = struct{}{}
	return node, nil
}

// addPod counts a bound pod seen by the informer (confirming an assumption).
func (c *schedCache) addPod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.assumed, pod.UID)
	c.snap.AddPod(pod)
}

// removePod stops counting pod uid; it reports whether it was counted.
func (c *schedCache) removePod(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.assumed, uid)
	return c.snap.RemovePod(uid)
}

// forget drops an assumption whose binding failed (a confirmed pod stays).
func (c *schedCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.assumed[uid]; ok {
		delete(c.assumed, uid)
		c.snap.RemovePod(uid)
	}
}

func (c *schedCache) isAssumed(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.assumed[uid]
	return ok
}

func (c *schedCache) setNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.snap.SetNode(node)
}

func (c *schedCache) removeNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.snap.RemoveNode(name)
}
