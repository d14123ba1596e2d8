// Package cronjob is wasmfleet's CronJob controller: it creates a CronJob's
// Jobs at the times of its schedule, as Kubernetes' cronjob controller
// (v2) does.
//
// Each start time gets one Job, named <cronjob>-<minutes since the epoch>
// of the time, with the batch.kubernetes.io/cronjob-scheduled-timestamp
// annotation and the CronJob as its controller; the Job controller runs
// it. The schedule (robfig/cron's five fields or a descriptor such as
// @hourly) is read in spec.timeZone, else in the process's local time
// zone, as Kubernetes does. Only the most recent missed start time runs
// (more than 100 missed are reported as TooManyMissedTimes), and none
// older than startingDeadlineSeconds (Kubernetes' MissSchedule event, for
// such a start time, cannot fire: its search already starts at the
// deadline, as here). concurrencyPolicy Forbid skips a start time
// while a Job runs, Replace deletes the running ones first; suspend stops
// new Jobs. Finished Jobs beyond successfulJobsHistoryLimit and
// failedJobsHistoryLimit are deleted, oldest first. The status keeps the
// running Jobs (active), lastScheduleTime and lastSuccessfulTime, and the
// controller records Kubernetes' events (SuccessfulCreate,
// SawCompletedJob, SuccessfulDelete, JobAlreadyActive, …).
//
// The controller does not poll: after each sync it arms a timer for the
// CronJob's next start time on its clock (injectable, so tests need not
// wait for real minutes), which queues the CronJob again; Job and CronJob
// changes queue it at once.
package cronjob

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// Name is the controller's name (queue, logs, event source).
const Name = "cronjob-controller"

var controllerKind = batchv1.SchemeGroupVersion.WithKind("CronJob")

// Options configure the controller.
type Options struct {
	// Clock is the time the schedules are read against and the timers
	// that wake the controller at start times run on; nil is the real
	// clock.
	Clock clock.WithDelayedExecution
}

// Controller is the CronJob controller. Create it with New; Run it once.
type Controller struct {
	client    kubernetes.Interface
	cjLister  batchlisters.CronJobLister
	jobLst    batchlisters.JobLister
	hasSynced []cache.InformerSynced
	queue     *controller.Queue
	clock     clock.WithDelayedExecution

	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	log         *slog.Logger

	wakeups *controller.Wakeups // per CronJob key: the wake-up at its next start time

	// deleted holds, per CronJob key, the UIDs of the jobs this controller
	// deleted since its last status write of that CronJob: if that write
	// failed, the list still names them, and they did not go missing.
	mu      sync.Mutex
	deleted map[string]sets.Set[types.UID]

	// synced, if set (by tests, before Run), is called after each sync of
	// a CronJob with the time the sync read from the clock.
	synced func(key string, now time.Time)
}

var _ controller.Controller = (*Controller)(nil)

// New returns a CronJob controller using factory's CronJob and Job
// informers, whose event handlers it registers now: start factory after
// New (Run waits for the caches).
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	cjInf := factory.Batch().V1().CronJobs()
	jobInf := factory.Batch().V1().Jobs()
	b := record.NewBroadcaster()
	c := &Controller{
		client:      client,
		cjLister:    cjInf.Lister(),
		jobLst:      jobInf.Lister(),
		hasSynced:   []cache.InformerSynced{cjInf.Informer().HasSynced, jobInf.Informer().HasSynced},
		clock:       clk,
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Name}),
		log:         log.With("controller", Name),
		deleted:     map[string]sets.Set[types.UID]{},
	}
	c.queue = controller.NewQueue(Name, log, c.sync)
	c.wakeups = controller.NewWakeups(clk, c.queue)
	cjInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.queue.Enqueue,
		UpdateFunc: c.updateCronJob,
		DeleteFunc: c.deleteCronJob,
	})
	jobInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addJob,
		UpdateFunc: c.updateJob,
		DeleteFunc: c.deleteJob,
	})
	return c
}

// Name implements controller.Controller.
func (c *Controller) Name() string { return Name }

// Run records events to the API and runs workers until ctx ends; the
// timers still armed are stopped.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer controller.RecordEvents(c.broadcaster, c.client)()
	defer c.wakeups.Stop()
	return c.queue.Run(ctx, workers, c.hasSynced...)
}

// ---- event handlers

func cronJobKey(cj *batchv1.CronJob) string { return cj.Namespace + "/" + cj.Name }

// updateCronJob queues a changed CronJob at once, except when its
// schedule or time zone changed: then at its next start time by the new
// schedule, as Kubernetes does, so that a new schedule does not run a
// start time that passed before it was set.
func (c *Controller) updateCronJob(old, cur any) {
	o, ok1 := old.(*batchv1.CronJob)
	n, ok2 := cur.(*batchv1.CronJob)
	if !ok1 || !ok2 {
		return
	}
	if o.Spec.Schedule != n.Spec.Schedule || !ptr.Equal(o.Spec.TimeZone, n.Spec.TimeZone) {
		sched, _, err := parseSchedule(n)
		if err != nil {
			c.recorder.Eventf(n, corev1.EventTypeWarning, "UnParseableCronJobSchedule", "unparseable schedule for cronjob: %s", n.Spec.Schedule)
			return
		}
		c.wakeups.After(cronJobKey(n), nextScheduleTimeDuration(n, c.clock.Now(), sched))
		return
	}
	c.queue.Enqueue(cur)
}

func (c *Controller) deleteCronJob(obj any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.wakeups.Forget(key)
	}
	c.queue.Enqueue(obj)
}

// owner returns the cached CronJob that ref names in ns, if ref is a
// CronJob controller reference and the CronJob is the one it names.
func (c *Controller) owner(ns string, ref *metav1.OwnerReference) *batchv1.CronJob {
	cj, _ := controller.Resolve(ref, controllerKind, c.cjLister.CronJobs(ns).Get)
	return cj
}

func (c *Controller) enqueueOwner(job *batchv1.Job) {
	if cj := c.owner(job.Namespace, metav1.GetControllerOf(job)); cj != nil {
		c.queue.Add(cronJobKey(cj))
	}
}

func (c *Controller) addJob(obj any) {
	if job, ok := obj.(*batchv1.Job); ok {
		c.enqueueOwner(job)
	}
}

func (c *Controller) updateJob(old, cur any) {
	o, ok1 := old.(*batchv1.Job)
	n, ok2 := cur.(*batchv1.Job)
	if !ok1 || !ok2 || o.ResourceVersion == n.ResourceVersion {
		return
	}
	if oref, nref := metav1.GetControllerOf(o), metav1.GetControllerOf(n); oref != nil && (nref == nil || oref.UID != nref.UID) {
		c.enqueueOwner(o)
	}
	c.enqueueOwner(n)
}

func (c *Controller) deleteJob(obj any) {
	obj = controller.Untomb(obj)
	if job, ok := obj.(*batchv1.Job); ok {
		c.enqueueOwner(job)
	}
}

// ---- sync

// sync reconciles one CronJob: history first, then its jobs and its next
// start time; the status is written once, and the wake-up armed for the
// start time after.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	now := c.clock.Now()
	if c.synced != nil {
		defer c.synced(key, now)
	}
	cached, err := c.cjLister.CronJobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.wakeups.Forget(key)
		c.forgetDeleted(key)
		return nil
	}
	if err != nil {
		return err
	}
	jobs, err := c.jobsOf(cached)
	if err != nil {
		return err
	}
	cj := cached.DeepCopy()
	cleaned := c.cleanupFinishedJobs(ctx, cj, jobs)
	next, changed, syncErr := c.syncCronJob(ctx, cj, jobs, now)
	if cleaned || changed {
		if _, err := c.client.BatchV1().CronJobs(ns).UpdateStatus(ctx, cj, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update status of cronjob %s: %w", key, err)
		}
		c.forgetDeleted(key)
	}
	if next != nil {
		c.wakeups.After(key, *next)
	}
	return syncErr
}

// jobsOf lists the cached Jobs cj controls.
func (c *Controller) jobsOf(cj *batchv1.CronJob) ([]*batchv1.Job, error) {
	all, err := c.jobLst.Jobs(cj.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var mine []*batchv1.Job
	for _, j := range all {
		if ref := metav1.GetControllerOf(j); ref != nil && ref.Kind == controllerKind.Kind && ref.Name == cj.Name && ref.UID == cj.UID {
			mine = append(mine, j)
		}
	}
	return mine, nil
}

// syncCronJob updates cj's status from its jobs and starts the job of the
// current start time if it is due. It returns how long until the
// controller should look again (nil: not before cj changes), and whether
// the status changed.
func (c *Controller) syncCronJob(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job, now time.Time) (*time.Duration, bool, error) {
	changed := false
	children := make(map[types.UID]bool, len(jobs))
	for _, j := range jobs {
		children[j.UID] = true
		active := inActive(cj, j.UID)
		done, how := finished(j)
		switch {
		case !active && !done:
			// Ours, running, and not in the list: we may have crashed
			// between creating it and writing the status, or our cache
			// of cj may be older than the jobs' (or someone made it,
			// kubectl create job --from). Ask the API before reporting it.
			fresh, err := c.client.BatchV1().CronJobs(cj.Namespace).Get(ctx, cj.Name, metav1.GetOptions{})
			if err != nil {
				return nil, changed, err
			}
			if i := slices.IndexFunc(fresh.Status.Active, func(r corev1.ObjectReference) bool { return r.UID == j.UID }); i >= 0 {
				// Our cache was behind: keep what this sync did so far.
				cj.Status.Active = append(cj.Status.Active, fresh.Status.Active[i])
				continue
			}
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnexpectedJob", "Saw a job that the controller did not create or forgot: %s", j.Name)
		case active && done:
			removeActive(cj, j.UID)
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "SawCompletedJob", "Saw completed job: %s, status: %v", j.Name, how)
			changed = true
			fallthrough
		case done && how == batchv1.JobComplete:
			if ct := j.Status.CompletionTime; how == batchv1.JobComplete && ct != nil &&
				(cj.Status.LastSuccessfulTime == nil || ct.After(cj.Status.LastSuccessfulTime.Time)) {
				cj.Status.LastSuccessfulTime = ct.DeepCopy()
				changed = true
			}
		}
	}

	// A job in the list that is gone (checked with the API: the cache may
	// lag) leaves it, or the CronJob would look busy for ever. It went
	// missing only if the CronJob's current status still lists it: our
	// cache of cj may predate a status this controller wrote since, as
	// when Replace deleted the job and dropped it from the list.
	var fresh *batchv1.CronJob
	for _, ref := range slices.Clone(cj.Status.Active) {
		if children[ref.UID] {
			continue
		}
		_, err := c.client.BatchV1().Jobs(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err == nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			return nil, changed, err
		}
		if fresh == nil {
			if fresh, err = c.client.BatchV1().CronJobs(cj.Namespace).Get(ctx, cj.Name, metav1.GetOptions{}); err != nil {
				return nil, changed, err
			}
		}
		if inActive(fresh, ref.UID) && !c.deletedJob(cronJobKey(cj), ref.UID) {
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "MissingJob", "Active job went missing: %v", ref.Name)
		}
		removeActive(cj, ref.UID)
		changed = true
	}

	if cj.DeletionTimestamp != nil {
		return nil, changed, nil
	}
	if tz := cj.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err != nil {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnknownTimeZone", "invalid timeZone: %q: %s", *tz, err)
			return nil, changed, nil
		}
	}
	if ptr.Deref(cj.Spec.Suspend, false) {
		return nil, changed, nil
	}
	sched, tzInSchedule, err := parseSchedule(cj)
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %q : %s", cj.Spec.Schedule, err)
		return nil, changed, nil
	}
	if tzInSchedule {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnsupportedSchedule", "CRON_TZ or TZ used in schedule %q is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details", cj.Spec.Schedule)
	}
	scheduled, m, err := nextScheduleTime(cj, now, sched)
	if m == manyMissed && scheduled != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "TooManyMissedTimes", "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew")
		c.log.Info("too many missed start times", "cronjob", cronJobKey(cj))
	}
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "InvalidSchedule", "invalid schedule: %s : %s", cj.Spec.Schedule, err)
		return nil, changed, nil
	}
	wait := func() (*time.Duration, bool, error) {
		d := nextScheduleTimeDuration(cj, now, sched)
		return &d, changed, nil
	}
	if scheduled == nil {
		return wait()
	}
	name := jobName(cj, *scheduled)
	if inActiveByName(cj, name) || (cj.Status.LastScheduleTime != nil && cj.Status.LastScheduleTime.Time.Equal(*scheduled)) {
		return wait() // this start time was acted on already
	}
	if cj.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent && len(cj.Status.Active) > 0 {
		// The cache may miss a job that runs (its status write or its
		// creation not seen yet), so Forbid may still overlap in rare
		// cases, as in Kubernetes.
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
		return wait()
	}
	if cj.Spec.ConcurrencyPolicy == batchv1.ReplaceConcurrent {
		for _, ref := range slices.Clone(cj.Status.Active) {
			job, err := c.client.BatchV1().Jobs(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedGet", "Get job: %v", err)
				return nil, changed, err
			}
			if !c.deleteJobOf(ctx, cj, job) {
				return nil, changed, fmt.Errorf("could not replace job %s/%s", job.Namespace, job.Name)
			}
			changed = true
		}
	}

	want, err := jobFromTemplate(cj, *scheduled)
	if err != nil {
		return nil, changed, err
	}
	job, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, want, metav1.CreateOptions{})
	switch {
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil, changed, err
	case apierrors.IsAlreadyExists(err):
		// Made before by us (whose status write then failed) or by
		// someone else: only ours goes into the list.
		existing, gerr := c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
		if gerr != nil {
			return nil, changed, gerr
		}
		if !metav1.IsControlledBy(existing, cj) || inActive(cj, existing.UID) {
			return nil, changed, nil
		}
		job = existing
		c.log.Info("job already exists", "cronjob", cronJobKey(cj), "job", job.Name)
	case err != nil:
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		return nil, changed, err
	default:
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulCreate", "Created job %v", job.Name)
	}
	ref, err := reference.GetReference(scheme.Scheme, job)
	if err != nil {
		return nil, changed, fmt.Errorf("reference job %s: %w", job.Name, err)
	}
	cj.Status.Active = append(cj.Status.Active, *ref)
	cj.Status.LastScheduleTime = &metav1.Time{Time: *scheduled}
	changed = true
	return wait()
}

// cleanupFinishedJobs deletes cj's finished jobs beyond its history
// limits, oldest first, and reports whether the status changed.
func (c *Controller) cleanupFinishedJobs(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) bool {
	if cj.Spec.SuccessfulJobsHistoryLimit == nil && cj.Spec.FailedJobsHistoryLimit == nil {
		return false
	}
	var succeeded, failed []*batchv1.Job
	for _, j := range jobs {
		switch done, how := finished(j); {
		case done && how == batchv1.JobComplete:
			succeeded = append(succeeded, j)
		case done && how == batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	changed := false
	for _, h := range []struct {
		jobs  []*batchv1.Job
		limit *int32
	}{{succeeded, cj.Spec.SuccessfulJobsHistoryLimit}, {failed, cj.Spec.FailedJobsHistoryLimit}} {
		if h.limit == nil || len(h.jobs) <= int(*h.limit) {
			continue
		}
		sortJobs(h.jobs)
		for _, j := range h.jobs[:len(h.jobs)-int(*h.limit)] {
			if c.deleteJobOf(ctx, cj, j) {
				changed = true
			}
		}
	}
	return changed
}

// deleteJobOf deletes job (its pods in the background) and drops it from
// cj's active list.
func (c *Controller) deleteJobOf(ctx context.Context, cj *batchv1.CronJob, job *batchv1.Job) bool {
	err := c.client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
		Preconditions:     &metav1.Preconditions{UID: &job.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedDelete", "Deleted job: %v", err)
		c.log.Warn("delete job", "cronjob", cronJobKey(cj), "job", job.Name, "err", err)
		return false
	}
	removeActive(cj, job.UID)
	key := cronJobKey(cj)
	c.mu.Lock()
	if c.deleted[key] == nil {
		c.deleted[key] = sets.New[types.UID]()
	}
	c.deleted[key].Insert(job.UID)
	c.mu.Unlock()
	if err == nil {
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %v", job.Name)
	}
	return true
}

// deletedJob reports whether this controller deleted the job uid of the
// CronJob key, and has not written the CronJob's status since.
func (c *Controller) deletedJob(key string, uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deleted[key].Has(uid)
}

func (c *Controller) forgetDeleted(key string) {
	c.mu.Lock()
	delete(c.deleted, key)
	c.mu.Unlock()
}

func inActive(cj *batchv1.CronJob, uid types.UID) bool {
	return slices.ContainsFunc(cj.Status.Active, func(r corev1.ObjectReference) bool { return r.UID == uid })
}

func inActiveByName(cj *batchv1.CronJob, name string) bool {
	return slices.ContainsFunc(cj.Status.Active, func(r corev1.ObjectReference) bool { return r.Name == name && r.Namespace == cj.Namespace })
}

func removeActive(cj *batchv1.CronJob, uid types.UID) {
	cj.Status.Active = slices.DeleteFunc(cj.Status.Active, func(r corev1.ObjectReference) bool { return r.UID == uid })
}
