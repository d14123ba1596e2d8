// Package job is wasmfleet's Job controller: it runs a Job's pods to
// completion as Kubernetes' job controller does — completions and
// parallelism (nil completions: work-queue semantics), backoffLimit (failed
// pods, and container restarts under restartPolicy OnFailure), failed-pod
// replacement with exponential back-off (10 s doubling to 6 min),
// activeDeadlineSeconds, suspend and resume — and reports the status:
// startTime, completionTime, active, ready, succeeded, failed, terminating
// and the conditions SuccessCriteriaMet then Complete, or FailureTarget
// then Failed, and Suspended.
//
// Finished pods are counted exactly once through the
// batch.kubernetes.io/job-tracking finalizer: every pod is created with
// it; a finished pod's UID is first written to
// status.uncountedTerminatedPods, then its finalizer is removed, then it
// moves into the succeeded or failed counter. A pod deleted by hand after
// it finished therefore stays (terminating) until it has been counted.
//
// An Indexed job (completionMode Indexed) runs one pod per completion index
// 0…completions-1, named <job>-<index>-<random>, with the index in the
// batch.kubernetes.io/job-completion-index annotation and label, in
// JOB_COMPLETION_INDEX (downward API, from the annotation) in every container,
// and in the hostname <job>-<index> (the template's subdomain is kept). A
// failed index gets a replacement pod; an index counts once however many
// of its pods succeed, and extra pods of an index are removed. Succeeded
// indexes are reported in status.completedIndexes in Kubernetes'
// compressed form ("1,3-5"); the job completes when every index has.
//
// With backoffLimitPerIndex, each index has its own failure budget and
// back-off: a replacement pod carries the index's failure count in the
// batch.kubernetes.io/job-index-failure-count annotation (the failed pod
// it replaces keeps its finalizer until then); an index whose pod fails
// past the budget fails and is not retried. Failed indexes are reported in
// status.failedIndexes; the job fails with reason MaxFailedIndexesExceeded
// once more than maxFailedIndexes failed, or with FailedIndexes when every
// index finished and some failed.
//
// A pod failure policy (restartPolicy Never only, as the API server
// checks) decides per failed pod by its first matching rule — exit codes
// of its containers (In or NotIn, optionally of one container) or its
// conditions (DisruptionTarget, …): FailJob fails the job at once (reason
// PodFailurePolicy), Ignore replaces the pod without counting the failure
// against backoffLimit or backoffLimitPerIndex, FailIndex fails its index,
// Count counts it as usual. Only failed pods are replaced then, not
// terminating ones.
//
// An Indexed job's success policy ends it early: once a rule is met (all
// its succeededIndexes, or succeededCount of them, or succeededCount
// indexes at all) the job gets SuccessCriteriaMet with reason
// SuccessPolicy, its remaining pods are deleted (not counted as failed),
// and it completes once they are gone.
//
// A job whose spec.managedBy names another controller than
// kubernetes.io/job-controller is left alone: no pods, no status, and the
// tracking finalizers of its pods stay for that controller.
package job

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// Name is the controller's name (queue, logs, event source).
const Name = "job-controller"

// The labels Kubernetes puts on a Job's pods besides the batch.kubernetes.io
// ones.
const (
	legacyJobNameLabel       = "job-name"
	legacyControllerUIDLabel = "controller-uid"
)

// Event reasons, as Kubernetes' job controller records them.
const (
	reasonSuccessfulCreate = "SuccessfulCreate"
	reasonFailedCreate     = "FailedCreate"
	reasonSuccessfulDelete = "SuccessfulDelete"
	reasonFailedDelete     = "FailedDelete"
	reasonCompleted        = "Completed"
	reasonSuspended        = "Suspended"
	reasonResumed          = "Resumed"
)

var controllerKind = batchv1.SchemeGroupVersion.WithKind("Job")

// Controller is the Job controller. Create it with New; Run it once.
type Controller struct {
	client    kubernetes.Interface
	jobLister batchlisters.JobLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced

	queue   *controller.Queue // jobs
	orphans *controller.Queue // pods whose tracking finalizer must go
	exp     *controller.Expectations
	finExp  *uidExpectations

	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	log         *slog.Logger
	now         func() time.Time

	mu      sync.Mutex
	backoff map[string]backoffRecord // per job key
	written map[string]uint64        // per job key: resourceVersion of our last status write
}

var _ controller.Controller = (*Controller)(nil)

// New returns a Job controller using factory's Job and Pod informers, whose
// event handlers it registers now: start factory after New (Run waits for
// the caches).
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	jobInf := factory.Batch().V1().Jobs()
	podInf := factory.Core().V1().Pods()
	b := record.NewBroadcaster()
	c := &Controller{
		client:      client,
		jobLister:   jobInf.Lister(),
		podLister:   podInf.Lister(),
		synced:      []cache.InformerSynced{jobInf.Informer().HasSynced, podInf.Informer().HasSynced},
		exp:         controller.NewExpectations(),
		finExp:      newUIDExpectations(),
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Name}),
		log:         log.With("controller", Name),
		now:         time.Now,
		backoff:     map[string]backoffRecord{},
		written:     map[string]uint64{},
	}
	c.queue = controller.NewQueue(Name, log, c.sync)
	c.orphans = controller.NewQueue(Name+"-orphan-pods", log, c.syncOrphanPod)
	jobInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.queue.Enqueue,
		UpdateFunc: func(_, cur any) { c.queue.Enqueue(cur) },
		DeleteFunc: c.deleteJob,
	})
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	})
	return c
}

// Name implements controller.Controller.
func (c *Controller) Name() string { return Name }

// Run records events to the API and runs workers (and one orphan-pod
// worker) until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer controller.RecordEvents(c.broadcaster, c.client)()
	errc := make(chan error, 1)
	go func() { errc <- c.orphans.Run(ctx, 1, c.synced...) }()
	err := c.queue.Run(ctx, workers, c.synced...)
	if oerr := <-errc; err == nil {
		err = oerr
	}
	return err
}

// ---- event handlers

func jobKey(job *batchv1.Job) string { return job.Namespace + "/" + job.Name }

// resolve returns the Job ref names in ns, if it is the one cached.
func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) *batchv1.Job {
	job, _ := controller.Resolve(ref, controllerKind, c.jobLister.Jobs(ns).Get)
	return job
}

// maybeOrphan queues a pod whose tracking finalizer no job will remove:
// it has no controller, or its Job is gone or finished.
func (c *Controller) maybeOrphan(pod *corev1.Pod, job *batchv1.Job) {
	if !hasTrackingFinalizer(pod) {
		return
	}
	ref := controller.ControllerOf(pod)
	if ref != nil && (ref.Kind != controllerKind.Kind || ref.APIVersion != controllerKind.GroupVersion().String()) {
		return
	}
	if job == nil || isFinished(job) {
		c.orphans.Enqueue(pod)
	}
}

// enqueueMatching queues the Jobs whose selector matches an orphan pod.
func (c *Controller) enqueueMatching(pod *corev1.Pod) {
	jobs, err := c.jobLister.Jobs(pod.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, job := range jobs {
		if sel := jobSelector(job); sel != nil && !sel.Empty() && sel.Matches(labels.Set(pod.Labels)) {
			c.queue.Enqueue(job)
		}
	}
}

func (c *Controller) addPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	ref := controller.ControllerOf(pod)
	if ref == nil {
		c.maybeOrphan(pod, nil)
		c.enqueueMatching(pod)
		return
	}
	job := c.resolve(pod.Namespace, ref)
	c.maybeOrphan(pod, job)
	if job == nil {
		return
	}
	c.exp.CreationObserved(jobKey(job))
	c.queue.Enqueue(job)
}

func (c *Controller) updatePod(old, cur any) {
	o, ok1 := old.(*corev1.Pod)
	n, ok2 := cur.(*corev1.Pod)
	if !ok1 || !ok2 || o.ResourceVersion == n.ResourceVersion {
		return
	}
	oldRef, curRef := controller.ControllerOf(o), controller.ControllerOf(n)
	if oldRef != nil && (curRef == nil || oldRef.UID != curRef.UID) {
		if job := c.resolve(o.Namespace, oldRef); job != nil {
			c.queue.Enqueue(job)
		}
	}
	if curRef == nil {
		c.maybeOrphan(n, nil)
		c.enqueueMatching(n)
		return
	}
	job := c.resolve(n.Namespace, curRef)
	c.maybeOrphan(n, job)
	if job == nil {
		return
	}
	key := jobKey(job)
	if !hasTrackingFinalizer(n) {
		c.finExp.observed(key, n.UID)
	}
	if o.DeletionTimestamp == nil && n.DeletionTimestamp != nil {
		c.exp.DeletionObserved(key)
	}
	c.queue.Enqueue(job)
}

func (c *Controller) deletePod(obj any) {
	pod, ok := controller.Untomb(obj).(*corev1.Pod)
	if !ok {
		return
	}
	job := c.resolve(pod.Namespace, controller.ControllerOf(pod))
	if job == nil {
		return
	}
	key := jobKey(job)
	c.finExp.observed(key, pod.UID)
	if pod.DeletionTimestamp == nil {
		c.exp.DeletionObserved(key)
	}
	c.queue.Enqueue(job)
}

// deleteJob queues the job (to forget it) and its pods that still carry
// the tracking finalizer.
func (c *Controller) deleteJob(obj any) {
	c.queue.Enqueue(obj)
	job, ok := controller.Untomb(obj).(*batchv1.Job)
	if !ok {
		return
	}
	pods, err := c.podLister.Pods(job.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, p := range pods {
		if ref := controller.ControllerOf(p); ref != nil && ref.UID == job.UID && hasTrackingFinalizer(p) {
			c.orphans.Enqueue(p)
		}
	}
}

// ---- sync

// jobSelector is the job's selector; for a job without one and without
// manualSelector, the one Kubernetes generates (controller-uid=<uid>).
func jobSelector(job *batchv1.Job) labels.Selector {
	ls := job.Spec.Selector
	if ls == nil {
		if job.Spec.ManualSelector != nil && *job.Spec.ManualSelector {
			return nil
		}
		ls = &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: string(job.UID)}}
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil
	}
	return sel
}

func (c *Controller) forget(key string) {
	c.exp.Delete(key)
	c.finExp.forget(key)
	c.mu.Lock()
	delete(c.backoff, key)
	delete(c.written, key)
	c.mu.Unlock()
}

// stale says whether the cached job predates our last status write (the
// informer will deliver the newer one and queue the job again). The API
// server's resourceVersions are etcd revisions, so they compare.
func (c *Controller) stale(key string, job *batchv1.Job) bool {
	rv, err := strconv.ParseUint(job.ResourceVersion, 10, 64)
	if err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return rv < c.written[key]
}

// jobState is one sync's view of a job.
type jobState struct {
	job         *batchv1.Job // a copy; Status is what will be written
	key         string
	pods        []*corev1.Pod
	active      []*corev1.Pod
	uncounted   uncounted           // status.uncountedTerminatedPods as read
	expectedRm  sets.Set[types.UID] // finalizer removals not yet observed
	withFin     sets.Set[types.UID] // pods still holding the finalizer
	terminating int32
	// terminatingPods are those being deleted that have not finished.
	terminatingPods []*corev1.Pod
	ready           int32
	succeeded       int32
	failed          int32
	newBackoff      backoffRecord
	finished        *batchv1.JobCondition // the condition the job is heading to
	canFinish       bool                  // every pod is in the cache
	needsFlush      bool

	// Indexed jobs: the succeeded indexes of status.completedIndexes as
	// read, and with the indexes succeeded since.
	prevSucceededIdx, succeededIdx intervals
	// With backoffLimitPerIndex: the failed indexes (status.failedIndexes
	// and since), and per index waiting for a replacement, its last failed
	// pod, kept (with its finalizer) until the replacement is created.
	failedIdx *intervals
	delayed   map[int]*corev1.Pod
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	shared, err := c.jobLister.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get job %s: %w", key, err)
	}
	if managedElsewhere(shared) {
		c.forget(key)
		return nil // another controller runs it
	}
	if isFinished(shared) {
		c.forget(key)
		c.orphanPodsOf(shared)
		return nil
	}
	if c.stale(key, shared) {
		return nil
	}
	sel := jobSelector(shared)
	if sel == nil || sel.Empty() {
		return nil // validation rejects such jobs
	}
	pods, err := c.podsForJob(ctx, shared, sel)
	if err != nil {
		return err
	}
	now := c.now()
	s := &jobState{job: shared.DeepCopy(), key: key, pods: pods}
	job, st := s.job, &s.job.Status
	if st.UncountedTerminatedPods == nil {
		st.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	s.canFinish = c.exp.Satisfied(key)
	s.uncounted = newUncounted(job)
	s.expectedRm = c.finExp.get(key)
	s.withFin = sets.New[types.UID]()
	for _, p := range pods {
		if hasTrackingFinalizer(p) && !s.expectedRm.Has(p.UID) {
			s.withFin.Insert(p.UID)
		}
	}
	s.needsFlush = cleanUncounted(st, s.withFin)
	indexed := isIndexed(job)

	var newSucceeded, newFailed []*corev1.Pod
	for _, p := range pods {
		if isActive(p) {
			s.active = append(s.active, p)
			if isPodReady(p) {
				s.ready++
			}
		} else if p.DeletionTimestamp != nil && !isTerminal(p) {
			s.terminating++
			s.terminatingPods = append(s.terminatingPods, p)
		}
		if !s.withFin.Has(p.UID) || s.uncounted.succeeded.Has(p.UID) || s.uncounted.failed.Has(p.UID) {
			continue
		}
		if _, ok := validIndex(job, p); indexed && !ok {
			continue // an Indexed job counts only pods of its indexes
		}
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			newSucceeded = append(newSucceeded, p)
		case isPodFailed(p, job):
			newFailed = append(newFailed, p)
		}
	}
	s.succeeded = st.Succeeded + int32(len(newSucceeded)+len(st.UncountedTerminatedPods.Succeeded))
	// Failures the pod failure policy ignores do not count.
	s.failed = st.Failed + int32(countedFailures(job, newFailed)+len(st.UncountedTerminatedPods.Failed))
	if st.StartTime == nil && !suspended(job) {
		st.StartTime = &metav1.Time{Time: now}
		s.needsFlush = true
	}
	c.mu.Lock()
	s.newBackoff = c.backoff[key].next(newSucceeded, newFailed)
	c.mu.Unlock()

	failJob := failJobMessage(job, pods)
	switch ft, scm := findCondition(job, batchv1.JobFailureTarget), findCondition(job, batchv1.JobSuccessCriteriaMet); {
	case scm != nil && scm.Status == corev1.ConditionTrue:
		s.finished = &batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: scm.Reason, Message: scm.Message}
	case ft != nil && ft.Status == corev1.ConditionTrue:
		s.finished = &batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: ft.Reason, Message: ft.Message}
	case failJob != "":
		s.finished = &batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonPodFailurePolicy, Message: failJob}
	case s.failed > *job.Spec.BackoffLimit || pastBackoffLimitOnFailure(job, pods):
		s.finished = &batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: msgBackoffLimitExceeded}
	case pastActiveDeadline(job, now):
		s.finished = &batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonDeadlineExceeded, Message: msgDeadlineExceeded}
	case job.Spec.ActiveDeadlineSeconds != nil && !suspended(job):
		left := time.Duration(*job.Spec.ActiveDeadlineSeconds)*time.Second - now.Sub(st.StartTime.Time)
		c.queue.AddAfter(key, left)
	}
	if indexed {
		s.prevSucceededIdx = parseIntervals(st.CompletedIndexes, completions(job))
		newIdx := sets.New[int]()
		for _, p := range pods {
			if ix, ok := validIndex(job, p); ok && p.Status.Phase == corev1.PodSucceeded && s.withFin.Has(p.UID) {
				newIdx.Insert(ix)
			}
		}
		s.succeededIdx = s.prevSucceededIdx.with(newIdx)
		s.succeeded = int32(s.succeededIdx.total())
		if hasBackoffLimitPerIndex(job) {
			c.failedIndexes(s)
		}
		if s.finished == nil {
			if msg, ok := matchSuccessPolicy(job.Spec.SuccessPolicy, completions(job), s.succeededIdx); ok {
				// The pods still running are deleted below.
				s.finished = &batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonSuccessPolicy, Message: msg}
			}
		}
	}

	active := int32(len(s.active))
	var manageErr error
	if s.finished != nil {
		// Delete what still runs, keeping the finalizers: a failed job
		// counts the pods as failed below.
		if len(s.active) > 0 {
			c.exp.Expect(key, 0, len(s.active))
		}
		deleted, deletedReady, err := c.deletePods(ctx, job, s.active, false)
		active -= deleted
		s.ready -= deletedReady
		s.terminating += deleted
		manageErr = err
		if deleted != int32(len(s.active)) {
			s.canFinish = false
		}
	} else {
		manageCalled := false
		if s.canFinish && job.DeletionTimestamp == nil {
			active, manageErr = c.manage(ctx, s, now)
			manageCalled = true
		}
		if isComplete(job, active, s.succeeded) {
			s.finished = &batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, Message: msgCompletionsReached}
		} else if manageCalled {
			if suspended(job) {
				if setCondition(st, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", now) {
					s.needsFlush = true
					c.recorder.Event(job, corev1.EventTypeNormal, reasonSuspended, "Job suspended")
				}
			} else if setCondition(st, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", now) {
				s.needsFlush = true
				c.recorder.Event(job, corev1.EventTypeNormal, reasonResumed, "Job resumed")
				// activeDeadlineSeconds counts the time the job is continuously active.
				st.StartTime = &metav1.Time{Time: now}
			}
		}
	}
	ready := s.ready
	if st.Active != active || st.Ready == nil || *st.Ready != ready || st.Terminating == nil || *st.Terminating != s.terminating {
		s.needsFlush = true
	}
	st.Active, st.Ready, st.Terminating = active, &ready, new(s.terminating)
	if err := c.trackStatus(ctx, s, now); err != nil {
		return fmt.Errorf("track status of job %s: %w", key, err)
	}
	return manageErr
}

// failedIndexes computes, for a job with backoffLimitPerIndex, its failed
// indexes, the failure they may cause (maxFailedIndexes exceeded, or every
// index finished and some failed), and the failed pods whose finalizer
// removal waits for the replacement.
func (c *Controller) failedIndexes(s *jobState) {
	job := s.job
	var prev intervals
	if job.Status.FailedIndexes != nil {
		prev = parseIntervals(*job.Status.FailedIndexes, completions(job))
	}
	// A pod whose finalizer this controller removed was counted then:
	// the cache may show it failing since (a pod the job stopped), but
	// its index did not fail.
	newIdx := sets.New[int]()
	for _, p := range s.pods {
		if ix, ok := validIndex(job, p); ok && s.withFin.Has(p.UID) && indexFailed(job, p) {
			newIdx.Insert(ix)
		}
	}
	failed := prev.with(newIdx)
	s.failedIdx = &failed
	if s.finished == nil {
		switch n := failed.total(); {
		case job.Spec.MaxFailedIndexes != nil && n > int(*job.Spec.MaxFailedIndexes):
			s.finished = &batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonMaxFailedIndexesExceeded, Message: msgMaxFailedIndexesExceeded}
		case n > 0 && n+s.succeededIdx.total() >= completions(job):
			s.finished = &batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonFailedIndexes, Message: msgFailedIndexes}
		}
	}
	s.delayed = delayedDeletions(job, s.pods, func(p *corev1.Pod) bool { return s.withFin.Has(p.UID) },
		s.succeededIdx, failed, indexesOf(job, s.active))
}

// manage creates or deletes pods so the job runs what it should and
// returns the number of active pods.
func (c *Controller) manage(ctx context.Context, s *jobState, now time.Time) (int32, error) {
	job := s.job
	active := int32(len(s.active))
	if suspended(job) {
		c.exp.Expect(s.key, 0, len(s.active))
		deleted, deletedReady, err := c.deletePods(ctx, job, s.active, true)
		s.ready -= deletedReady
		s.terminating += deleted
		return active - deleted, err
	}
	want := wantActive(job, active, s.succeeded)
	// An Indexed job also removes pods of repeated or invalid indexes.
	if del := podsForRemoval(job, s.active, int(max(active-want, 0))); len(del) > 0 {
		del = del[:min(len(del), maxPodCreateDeletePerSync)]
		c.exp.Expect(s.key, 0, len(del))
		deleted, deletedReady, err := c.deletePods(ctx, job, del, true)
		s.ready -= deletedReady
		s.terminating += deleted
		return active - deleted, err
	}
	var terminating int32
	if onlyReplaceFailedPods(job) {
		terminating = s.terminating
	}
	diff := want - terminating - active
	if diff <= 0 {
		return active, nil
	}
	perIndex := hasBackoffLimitPerIndex(job)
	if !perIndex {
		if left := s.newBackoff.remaining(now); left > 0 {
			c.queue.AddAfter(s.key, left)
			return active, nil
		}
	}
	diff = min(diff, maxPodCreateDeletePerSync)
	var pods []*corev1.Pod
	if isIndexed(job) {
		taken := indexesOf(job, s.active)
		if onlyReplaceFailedPods(job) {
			taken = taken.Union(indexesOf(job, s.terminatingPods))
		}
		done := s.succeededIdx
		if s.failedIdx != nil {
			done = done.merge(*s.failedIdx)
		}
		indexes := pendingIndexes(completions(job), int(diff), done, taken)
		if perIndex {
			// Each index backs off on its own failures.
			var due []int
			var wait time.Duration
			for _, ix := range indexes {
				left := indexBackoff(s.delayed[ix]).remaining(now)
				if left == 0 {
					due = append(due, ix)
				} else if wait == 0 || left < wait {
					wait = left
				}
			}
			if wait > 0 {
				c.queue.AddAfter(s.key, wait)
			}
			indexes = due
		}
		for _, ix := range indexes {
			p := newPod(job, ix)
			if perIndex {
				setIndexFailureCounts(p, job, s.delayed[ix])
			}
			pods = append(pods, p)
		}
	} else {
		for range diff {
			pods = append(pods, newPod(job, noIndex))
		}
	}
	if len(pods) == 0 {
		return active, nil
	}
	c.exp.Expect(s.key, len(pods), 0)
	created, err := c.createPods(ctx, job, pods)
	return active + created, err
}

// podsForRemoval picks at least n active pods to delete, in Kubernetes'
// order; for an Indexed job, first those whose index is invalid or
// repeated.
func podsForRemoval(job *batchv1.Job, active []*corev1.Pod, n int) []*corev1.Pod {
	if !isIndexed(job) {
		return activePodsForRemoval(active, n)
	}
	rm, keep := surplusIndexedPods(job, active)
	if len(rm) < n {
		rm = append(rm, activePodsForRemoval(keep, n-len(rm))...)
	}
	return rm
}

// newPod builds one of job's pods: the template with the tracking
// finalizer and the job labels, and for an Indexed job its index ix.
func newPod(job *batchv1.Job, ix int) *corev1.Pod {
	pod := controller.PodFromTemplate(&job.Spec.Template, job, controllerKind)
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	if job.Spec.ManualSelector == nil || !*job.Spec.ManualSelector {
		// The API server labels the template; a job stored without those
		// labels still gets them on its pods.
		for k, v := range map[string]string{
			batchv1.ControllerUidLabel: string(job.UID), legacyControllerUIDLabel: string(job.UID),
			batchv1.JobNameLabel: job.Name, legacyJobNameLabel: job.Name,
		} {
			if _, ok := pod.Labels[k]; !ok {
				pod.Labels[k] = v
			}
		}
	}
	if !hasTrackingFinalizer(pod) {
		pod.Finalizers = append(pod.Finalizers, batchv1.JobTrackingFinalizer)
	}
	if ix != noIndex {
		setCompletionIndex(pod, job, ix)
	}
	return pod
}

// createPods creates pods in slow-start batches (1, 2, 4, …), stopping
// at the first failed batch; it returns how many were created. Skipped and
// failed creates are marked observed.
func (c *Controller) createPods(ctx context.Context, job *batchv1.Job, pods []*corev1.Pod) (int32, error) {
	n := len(pods)
	key := jobKey(job)
	var created int32
	batch := min(n, 1)
	for pos := 0; pos < n; {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for _, pod := range pods[pos : pos+batch] {
			wg.Go(func() {
				p, err := c.client.CoreV1().Pods(job.Namespace).Create(ctx, pod, metav1.CreateOptions{})
				if err != nil {
					c.exp.CreationObserved(key)
					if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
						return
					}
					c.recorder.Eventf(job, corev1.EventTypeWarning, reasonFailedCreate, "Error creating: %v", err)
					mu.Lock()
					errs = append(errs, fmt.Errorf("create pod: %w", err))
					mu.Unlock()
					return
				}
				mu.Lock()
				created++
				mu.Unlock()
				c.recorder.Eventf(job, corev1.EventTypeNormal, reasonSuccessfulCreate, "Created pod: %v", p.Name)
			})
		}
		wg.Wait()
		pos += batch
		if len(errs) > 0 {
			for range n - pos {
				c.exp.CreationObserved(key)
			}
			return created, errs[0]
		}
		batch = min(2*batch, n-pos)
	}
	return created, nil
}

// deletePods deletes pods of job; with dropFinalizer their tracking
// finalizer is removed first, so they are not counted as failed (a
// scale-down or suspension, not a failure). It returns how many deletions
// were issued and how many of those pods were ready.
func (c *Controller) deletePods(ctx context.Context, job *batchv1.Job, pods []*corev1.Pod, dropFinalizer bool) (int32, int32, error) {
	key := jobKey(job)
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		deleted, ready int32
		errs           []error
	)
	fail := func(p *corev1.Pod, err error) {
		c.exp.DeletionObserved(key)
		if apierrors.IsNotFound(err) {
			return
		}
		c.recorder.Eventf(job, corev1.EventTypeWarning, reasonFailedDelete, "Error deleting: %v", err)
		mu.Lock()
		errs = append(errs, fmt.Errorf("delete pod %s: %w", p.Name, err))
		mu.Unlock()
	}
	for _, p := range pods {
		wg.Go(func() {
			if dropFinalizer && hasTrackingFinalizer(p) {
				if err := c.removeFinalizer(ctx, key, p); err != nil {
					fail(p, err)
					return
				}
			}
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
			if err != nil {
				fail(p, err)
				return
			}
			mu.Lock()
			deleted++
			if isPodReady(p) {
				ready++
			}
			mu.Unlock()
			c.recorder.Eventf(job, corev1.EventTypeNormal, reasonSuccessfulDelete, "Deleted pod: %v", p.Name)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return deleted, ready, errs[0]
	}
	return deleted, ready, nil
}

// removeFinalizer drops the tracking finalizer from p, expecting to
// observe it (job key, "" for orphans).
func (c *Controller) removeFinalizer(ctx context.Context, key string, p *corev1.Pod) error {
	if key != "" {
		c.finExp.expect(key, p.UID)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"$deleteFromPrimitiveList/finalizers": []string{batchv1.JobTrackingFinalizer},
	}})
	if err != nil {
		return err
	}
	_, err = c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		if key != "" {
			c.finExp.observed(key, p.UID)
		}
		return fmt.Errorf("remove finalizer of pod %s: %w", p.Name, err)
	}
	return nil
}

// trackStatus records finished pods as uncounted, removes their
// finalizers, moves them into the counters, and once nothing is left
// uncounted or terminating writes the terminal condition
// (trackJobStatusAndRemoveFinalizers).
func (c *Controller) trackStatus(ctx context.Context, s *jobState, now time.Time) error {
	job, st := s.job, &s.job.Status
	indexed := isIndexed(job)
	var toRemove []*corev1.Pod
	newSucceededIdx := sets.New[int]()
	reachedMax := false
	for _, p := range s.pods {
		if !s.withFin.Has(p.UID) {
			continue
		}
		failed := isPodFailed(p, job)
		if !(job.DeletionTimestamp != nil || s.finished != nil || p.Status.Phase == corev1.PodSucceeded || failed) {
			continue
		}
		if ix, ok := validIndex(job, p); ok && job.DeletionTimestamp == nil && s.finished == nil && p.Status.Phase != corev1.PodSucceeded && s.delayed[ix] == p {
			continue // its replacement must learn the index's failures from it
		}
		toRemove = append(toRemove, p)
		ix, validIx := validIndex(job, p)
		switch {
		case p.Status.Phase == corev1.PodSucceeded && !s.uncounted.failed.Has(p.UID):
			switch {
			case indexed:
				// Its index in completedIndexes counts it; no UID needed.
				if validIx && !s.prevSucceededIdx.has(ix) {
					newSucceededIdx.Insert(ix)
				}
			case !s.uncounted.succeeded.Has(p.UID):
				st.UncountedTerminatedPods.Succeeded = append(st.UncountedTerminatedPods.Succeeded, p.UID)
				s.needsFlush = true
			}
		case failed || (s.finished != nil && !finishedSuccessfully(s.finished) && !isTerminal(p)):
			// A failing job counts what it stops as failed; one that met its
			// success criteria does not.
			// So does the pod failure policy, unless it ignores the failure.
			if !s.uncounted.failed.Has(p.UID) && (!indexed || validIx) && matchPodFailurePolicy(job.Spec.PodFailurePolicy, p).count {
				st.UncountedTerminatedPods.Failed = append(st.UncountedTerminatedPods.Failed, p.UID)
				s.needsFlush = true
			}
		}
		if newSucceededIdx.Len()+len(st.UncountedTerminatedPods.Succeeded)+len(st.UncountedTerminatedPods.Failed) >= maxUncountedPods {
			reachedMax = true
			break
		}
	}
	if indexed {
		s.succeededIdx = s.succeededIdx.with(newSucceededIdx)
		if str := s.succeededIdx.String(); str != st.CompletedIndexes {
			st.CompletedIndexes = str
			s.needsFlush = true
		}
		if n := int32(s.succeededIdx.total()); n != st.Succeeded {
			st.Succeeded = n
			s.needsFlush = true
		}
		var failedIdx *string
		if s.failedIdx != nil {
			failedIdx = new(s.failedIdx.String())
		}
		if !ptr.Equal(failedIdx, st.FailedIndexes) {
			st.FailedIndexes = failedIdx
			s.needsFlush = true
		}
	}
	if f := s.finished; f != nil && (f.Type == batchv1.JobFailureTarget || f.Type == batchv1.JobSuccessCriteriaMet) {
		if findCondition(job, f.Type) == nil {
			setCondition(st, f.Type, f.Status, f.Reason, f.Message, now)
			s.needsFlush = true
		}
	}
	if s.needsFlush {
		// The uncounted pods must be on record before their finalizers go.
		if err := c.writeStatus(ctx, s); err != nil {
			return err
		}
		c.mu.Lock()
		c.backoff[s.key] = s.newBackoff
		c.mu.Unlock()
	}
	var rmErr error
	if len(toRemove) > 0 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, p := range toRemove {
			wg.Go(func() {
				err := c.removeFinalizer(ctx, s.key, p)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					rmErr = err
					return
				}
				s.withFin.Delete(p.UID)
			})
		}
		wg.Wait()
	}
	if cleanUncounted(st, s.withFin) {
		s.needsFlush = true
	}
	if rmErr != nil {
		if s.needsFlush {
			if err := c.writeStatus(ctx, s); err != nil {
				return err
			}
		}
		return rmErr
	}
	finished := false
	if f := s.finished; f != nil && !reachedMax && s.canFinish &&
		len(st.UncountedTerminatedPods.Succeeded)+len(st.UncountedTerminatedPods.Failed) == 0 && *st.Terminating == 0 {
		typ := batchv1.JobFailed
		if f.Type == batchv1.JobSuccessCriteriaMet || f.Type == batchv1.JobComplete {
			typ = batchv1.JobComplete
		}
		setCondition(st, typ, corev1.ConditionTrue, f.Reason, f.Message, now)
		if typ == batchv1.JobComplete {
			st.CompletionTime = &metav1.Time{Time: now}
		}
		s.finished.Type = typ
		s.needsFlush, finished = true, true
	}
	if !s.needsFlush {
		return nil
	}
	if err := c.writeStatus(ctx, s); err != nil {
		return err
	}
	if finished {
		if s.finished.Type == batchv1.JobComplete {
			c.recorder.Event(job, corev1.EventTypeNormal, reasonCompleted, "Job completed")
		} else {
			c.recorder.Event(job, corev1.EventTypeWarning, s.finished.Reason, s.finished.Message)
		}
	}
	return nil
}

// writeStatus writes s.job's status (409 on a stale job: the sync is
// retried) and takes the written object's metadata, so later writes of
// this sync build on it.
func (c *Controller) writeStatus(ctx context.Context, s *jobState) error {
	want := s.job.Status.DeepCopy()
	got, err := c.client.BatchV1().Jobs(s.job.Namespace).UpdateStatus(ctx, s.job, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	if rv, err := strconv.ParseUint(got.ResourceVersion, 10, 64); err == nil {
		c.mu.Lock()
		c.written[s.key] = max(c.written[s.key], rv)
		c.mu.Unlock()
	}
	if !apiequality.Semantic.DeepEqual(&got.Status, want) {
		c.log.Debug("status written differs from status sent", "job", s.key)
	}
	// Keep s.job (callers hold pointers into its status); take the new
	// metadata, resourceVersion above all.
	got.ObjectMeta.DeepCopyInto(&s.job.ObjectMeta)
	s.needsFlush = false
	return nil
}

// podsForJob returns the job's pods: those it controls, and orphans its
// selector matches, which it adopts (adding the tracking finalizer).
func (c *Controller) podsForJob(ctx context.Context, job *batchv1.Job, sel labels.Selector) ([]*corev1.Pod, error) {
	all, err := c.podLister.Pods(job.Namespace).List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var out []*corev1.Pod
	for _, p := range all {
		ref := controller.ControllerOf(p)
		switch {
		case ref != nil && ref.UID == job.UID:
			out = append(out, p)
		case ref == nil && p.DeletionTimestamp == nil && job.DeletionTimestamp == nil && sel.Matches(labels.Set(p.Labels)):
			adopted, err := c.adopt(ctx, job, p)
			if err != nil {
				if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || apierrors.IsInvalid(err) {
					continue
				}
				return nil, err
			}
			out = append(out, adopted)
		}
	}
	return out, nil
}

// adopt makes job the controller of an orphan pod, after checking with a
// live read that job is not being deleted.
func (c *Controller) adopt(ctx context.Context, job *batchv1.Job, p *corev1.Pod) (*corev1.Pod, error) {
	fresh, err := c.client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("recheck job before adopting: %w", err)
	}
	if fresh.UID != job.UID || fresh.DeletionTimestamp != nil {
		return nil, apierrors.NewConflict(batchv1.Resource("jobs"), job.Name, fmt.Errorf("job changed"))
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []metav1.OwnerReference{*metav1.NewControllerRef(job, controllerKind)},
		"finalizers":      []string{batchv1.JobTrackingFinalizer},
		"uid":             p.UID,
	}})
	if err != nil {
		return nil, err
	}
	got, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("adopt pod %s: %w", p.Name, err)
	}
	return got, nil
}

// orphanPodsOf queues the pods of a finished job that still carry the
// tracking finalizer.
func (c *Controller) orphanPodsOf(job *batchv1.Job) {
	pods, err := c.podLister.Pods(job.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, p := range pods {
		if ref := controller.ControllerOf(p); ref != nil && ref.UID == job.UID && hasTrackingFinalizer(p) {
			c.orphans.Enqueue(p)
		}
	}
}

// syncOrphanPod removes the tracking finalizer from a pod no running job
// will count: without a controller, or whose Job is gone or finished.
func (c *Controller) syncOrphanPod(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := c.podLister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !hasTrackingFinalizer(pod) {
		return nil
	}
	if ref := controller.ControllerOf(pod); ref != nil {
		if ref.Kind != controllerKind.Kind || ref.APIVersion != controllerKind.GroupVersion().String() {
			return nil
		}
		if job := c.resolve(ns, ref); job != nil && (!isFinished(job) || managedElsewhere(job)) {
			return nil // it has a job to count it, or the job is not ours
		}
		// Confirm with a live read: the cache may not have the job yet.
		live, err := c.client.BatchV1().Jobs(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case err == nil && live.UID == ref.UID && (!isFinished(live) || managedElsewhere(live)):
			return nil
		case err != nil && !apierrors.IsNotFound(err):
			return fmt.Errorf("get job of orphan pod %s: %w", key, err)
		}
	}
	return c.removeFinalizer(ctx, "", pod)
}

// uidExpectations holds, per job, the pods whose finalizer removal was
// sent but not yet observed; those pods count as finalizer-free. Safe for
// concurrent use.
type uidExpectations struct {
	mu sync.Mutex
	m  map[string]sets.Set[types.UID]
}

func newUIDExpectations() *uidExpectations {
	return &uidExpectations{m: map[string]sets.Set[types.UID]{}}
}

func (e *uidExpectations) expect(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m[key] == nil {
		e.m[key] = sets.New[types.UID]()
	}
	e.m[key].Insert(uid)
}

func (e *uidExpectations) observed(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.m[key]; s != nil {
		s.Delete(uid)
		if s.Len() == 0 {
			delete(e.m, key)
		}
	}
}

// get returns a copy of key's expected removals.
func (e *uidExpectations) get(key string) sets.Set[types.UID] {
	e.mu.Lock()
	defer e.mu.Unlock()
	return sets.New(e.m[key].UnsortedList()...)
}

func (e *uidExpectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
