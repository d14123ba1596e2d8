package cronjob

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

const ns = "default"

// env is a control plane (embedded etcd and NATS) with only the CronJob
// controller running, on a fake clock. No Job controller runs: tests
// finish jobs by writing their status, as the Job controller would.
type env struct {
	cs    kubernetes.Interface
	clock *clocktesting.FakeClock
	ctrl  *Controller
	syncs *testenv.Syncs
}

func start(t *testing.T) *env { return startWith(t, nil) }

// startWith is start with the controller's client transport wrapped by
// wrap.
func startWith(t *testing.T, wrap func(http.RoundTripper) http.RoundTripper) *env {
	t.Helper()
	c := testcluster.Start(t)
	e := &env{cs: c.Client(t), clock: clocktesting.NewFakeClock(time.Now()), syncs: testenv.NewSyncs()}
	cfg := c.RESTConfig(t)
	cfg.Wrap(wrap)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctrl := New(client, factory, Options{Clock: e.clock}, log)
	if ctrl.Name() != Name {
		t.Fatalf("Name() = %q", ctrl.Name())
	}
	e.ctrl = ctrl
	ctrl.synced = e.syncs.Synced
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx, 2) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		factory.Shutdown()
	})
	return e
}

func newCronJob(name, schedule string) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: batchv1.CronJobSpec{
			Schedule: schedule,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "main", Image: "uploader:v1"}},
				}}},
			},
		},
	}
}

// create stores cj, waits for the controller's first sync of it (at the
// clock's time, before its first start time) and returns it with its
// start times after its creation: starts[0] is the first. The controller
// is then idle until its wake-up at starts[0]: the steps of the clock
// that follow are seen through the timers it armed.
func (e *env) create(t *testing.T, cj *batchv1.CronJob) (*batchv1.CronJob, []time.Time) {
	t.Helper()
	got, err := e.cs.BatchV1().CronJobs(ns).Create(context.Background(), cj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.waitSynced(t, got.Name, e.clock.Now())
	sched, _, err := parseSchedule(got)
	if err != nil {
		t.Fatal(err)
	}
	var starts []time.Time
	at := got.CreationTimestamp.Time
	for range 5 {
		at = sched.Next(at)
		starts = append(starts, at)
	}
	return got, starts
}

// stepTo sets the clock to at and waits for cj's sync at that time (the
// wake-up armed for a start time before at, or the one a change queues).
func (e *env) stepTo(t *testing.T, cj string, at time.Time) {
	t.Helper()
	e.clock.SetTime(at)
	e.waitSynced(t, cj, at)
}

// waitSynced waits for a sync of cj that read at (or later) from the
// clock and finished.
func (e *env) waitSynced(t *testing.T, cj string, at time.Time) {
	t.Helper()
	e.syncs.Wait(t, ns+"/"+cj, at, 60*time.Second)
}

// waitSeen waits until the controller's cache holds a version of the
// CronJob name that satisfies ok.
func (e *env) waitSeen(t *testing.T, name string, ok func(*batchv1.CronJob) bool) {
	t.Helper()
	testenv.Poll(t, "the controller to see "+name, func() (bool, string) {
		cj, err := e.ctrl.cjLister.CronJobs(ns).Get(name)
		if err != nil {
			return false, err.Error()
		}
		return ok(cj), fmt.Sprintf("%+v", cj.Spec)
	})
}

func (e *env) cronJob(t *testing.T, name string) *batchv1.CronJob {
	t.Helper()
	cj, err := e.cs.BatchV1().CronJobs(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cj
}

// jobNames lists the names of the jobs cj controls, sorted.
func (e *env) jobNames(t *testing.T, cj *batchv1.CronJob) []string {
	t.Helper()
	list, err := e.cs.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range list.Items {
		if metav1.IsControlledBy(&j, cj) && j.DeletionTimestamp == nil {
			names = append(names, j.Name)
		}
	}
	slices.Sort(names)
	return names
}

// waitJobs waits until cj's jobs are those of the start times at.
func (e *env) waitJobs(t *testing.T, cj *batchv1.CronJob, at ...time.Time) {
	t.Helper()
	var want []string
	for _, a := range at {
		want = append(want, jobName(cj, a))
	}
	slices.Sort(want)
	testenv.Poll(t, fmt.Sprintf("jobs %v", want), func() (bool, string) {
		got := e.jobNames(t, cj)
		return slices.Equal(got, want), fmt.Sprint(got)
	})
}

// waitActive waits until cj's status lists the jobs of the start times at
// as active.
func (e *env) waitActive(t *testing.T, cj *batchv1.CronJob, at ...time.Time) *batchv1.CronJob {
	t.Helper()
	var want []string
	for _, a := range at {
		want = append(want, jobName(cj, a))
	}
	slices.Sort(want)
	var got *batchv1.CronJob
	testenv.Poll(t, fmt.Sprintf("active %v", want), func() (bool, string) {
		got = e.cronJob(t, cj.Name)
		var names []string
		for _, r := range got.Status.Active {
			names = append(names, r.Name)
		}
		slices.Sort(names)
		return slices.Equal(names, want), fmt.Sprintf("%+v", got.Status)
	})
	return got
}

// finish writes a Complete (or Failed) status on the job of cj's start
// time at, started then and finished a second later.
func (e *env) finish(t *testing.T, cj *batchv1.CronJob, at time.Time, how batchv1.JobConditionType) {
	t.Helper()
	jobs := e.cs.BatchV1().Jobs(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		j, err := jobs.Get(context.Background(), jobName(cj, at), metav1.GetOptions{})
		if err != nil {
			return err
		}
		j.Status.StartTime = ptr.To(metav1.NewTime(at))
		if how == batchv1.JobComplete {
			j.Status.CompletionTime = ptr.To(metav1.NewTime(at.Add(time.Second)))
			j.Status.Succeeded = 1
		} else {
			j.Status.Failed = 1
		}
		j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: how, Status: corev1.ConditionTrue})
		_, err = jobs.UpdateStatus(context.Background(), j, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitEvent waits for an event of reason on cj whose message holds text.
func (e *env) waitEvent(t *testing.T, cj *batchv1.CronJob, reason, text string) {
	t.Helper()
	testenv.Poll(t, "event "+reason, func() (bool, string) {
		evs, err := e.events(cj)
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, ev := range evs {
			if ev.Reason == reason && strings.Contains(ev.Message, text) {
				if ev.Source.Component != Name {
					t.Errorf("event source %q", ev.Source.Component)
				}
				return true, ""
			}
			seen = append(seen, ev.Reason+": "+ev.Message)
		}
		return false, strings.Join(seen, "; ")
	})
}

// events lists the events about cj.
func (e *env) events(cj *batchv1.CronJob) ([]corev1.Event, error) {
	evs, err := e.cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var mine []corev1.Event
	for _, ev := range evs.Items {
		if ev.InvolvedObject.Kind == "CronJob" && ev.InvolvedObject.UID == cj.UID {
			mine = append(mine, ev)
		}
	}
	return mine, nil
}

func TestScheduleFiresAndStatusFollowsTheJob(t *testing.T) {
	e := start(t)
	cj, starts := e.create(t, newCronJob("upload", "*/1 * * * *"))
	if got := e.jobNames(t, cj); len(got) != 0 {
		t.Fatalf("jobs before the first start time: %v", got)
	}

	e.stepTo(t, cj.Name, starts[0].Add(time.Second))
	e.waitJobs(t, cj, starts[0])
	got := e.waitActive(t, cj, starts[0])
	if !got.Status.LastScheduleTime.Time.Equal(starts[0]) {
		t.Errorf("lastScheduleTime %v, want %v", got.Status.LastScheduleTime, starts[0])
	}
	job, err := e.cs.BatchV1().Jobs(ns).Get(context.Background(), jobName(cj, starts[0]), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("upload-%d", starts[0].Unix()/60); job.Name != want {
		t.Errorf("job name %s, want %s", job.Name, want)
	}
	ref := metav1.GetControllerOf(job)
	if ref == nil || ref.Kind != "CronJob" || ref.APIVersion != "batch/v1" || ref.UID != cj.UID || ref.Name != cj.Name {
		t.Errorf("job's controller %+v", job.OwnerReferences)
	}
	if job.Annotations[batchv1.CronJobScheduledTimestampAnnotation] != starts[0].UTC().Format(time.RFC3339) || job.Labels["app"] != "upload" {
		t.Errorf("job metadata %+v", job.ObjectMeta)
	}
	if job.Spec.Selector == nil || *job.Spec.BackoffLimit != 6 {
		t.Errorf("job not defaulted by the API server: %+v", job.Spec)
	}
	e.waitEvent(t, cj, "SuccessfulCreate", "Created job "+job.Name)

	e.finish(t, cj, starts[0], batchv1.JobComplete)
	got = e.waitActive(t, cj)
	testenv.Poll(t, "lastSuccessfulTime", func() (bool, string) {
		got = e.cronJob(t, cj.Name)
		lst := got.Status.LastSuccessfulTime
		return lst != nil && lst.Time.Equal(starts[0].Add(time.Second)), fmt.Sprintf("%+v", got.Status)
	})
	e.waitEvent(t, cj, "SawCompletedJob", "status: Complete")

	// The next start time, on the wake-up armed after the first.
	e.stepTo(t, cj.Name, starts[1].Add(time.Second))
	e.waitJobs(t, cj, starts[0], starts[1])
	e.waitActive(t, cj, starts[1])

	// An active job deleted by hand leaves the list.
	bg := metav1.DeletePropagationBackground
	if err := e.cs.BatchV1().Jobs(ns).Delete(context.Background(), jobName(cj, starts[1]), metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		t.Fatal(err)
	}
	e.waitActive(t, cj)
}

func TestForbidSkipsWhileAJobRuns(t *testing.T) {
	e := start(t)
	in := newCronJob("forbid", "*/1 * * * *")
	in.Spec.ConcurrencyPolicy = batchv1.ForbidConcurrent
	cj, starts := e.create(t, in)
	e.stepTo(t, cj.Name, starts[0].Add(time.Second))
	e.waitActive(t, cj, starts[0])

	e.stepTo(t, cj.Name, starts[1].Add(time.Second))
	e.waitEvent(t, cj, "JobAlreadyActive", "concurrency policy is Forbid")
	if got := e.jobNames(t, cj); !slices.Equal(got, []string{jobName(cj, starts[0])}) {
		t.Fatalf("jobs while one runs under Forbid: %v", got)
	}

	// Once it finished, the start time it held back runs (there is no
	// startingDeadlineSeconds), as in Kubernetes.
	e.finish(t, cj, starts[0], batchv1.JobComplete)
	e.waitJobs(t, cj, starts[0], starts[1])
	e.waitActive(t, cj, starts[1])
}

func TestReplaceReplacesTheRunningJob(t *testing.T) {
	e := start(t)
	in := newCronJob("replace", "*/1 * * * *")
	in.Spec.ConcurrencyPolicy = batchv1.ReplaceConcurrent
	cj, starts := e.create(t, in)
	e.stepTo(t, cj.Name, starts[0].Add(time.Second))
	e.waitActive(t, cj, starts[0])

	e.stepTo(t, cj.Name, starts[1].Add(time.Second))
	e.waitJobs(t, cj, starts[1])
	e.waitActive(t, cj, starts[1])
	e.waitEvent(t, cj, "SuccessfulDelete", "Deleted job "+jobName(cj, starts[0]))
	// Once more; the jobs it deleted itself did not go missing, even to a
	// sync that came before the cache had the status without them.
	e.stepTo(t, cj.Name, starts[2].Add(time.Second))
	e.waitJobs(t, cj, starts[2])
	e.waitActive(t, cj, starts[2])
	e.waitEvent(t, cj, "SuccessfulDelete", "Deleted job "+jobName(cj, starts[1]))
	e.noMissingJob(t, cj)
}

// TestReplaceAfterAFailedStatusWrite: Replace deletes the running job
// and starts the next, but its status write fails, so the CronJob still
// lists the deleted job at the next sync. That job did not go missing.
func TestReplaceAfterAFailedStatusWrite(t *testing.T) {
	var fail atomic.Int32
	e := startWith(t, func(rt http.RoundTripper) http.RoundTripper {
		return testenv.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/cronjobs/replace/status") && fail.Add(-1) >= 0 {
				return testenv.StatusResponse(r, http.StatusConflict, metav1.StatusReasonConflict,
					`Operation cannot be fulfilled on cronjobs.batch "replace": the object has been modified; please apply your changes to the latest version and try again`), nil
			}
			return rt.RoundTrip(r)
		})
	})
	in := newCronJob("replace", "*/1 * * * *")
	in.Spec.ConcurrencyPolicy = batchv1.ReplaceConcurrent
	cj, starts := e.create(t, in)
	e.stepTo(t, cj.Name, starts[0].Add(time.Second))
	e.waitActive(t, cj, starts[0])

	fail.Store(1)
	e.stepTo(t, cj.Name, starts[1].Add(time.Second))
	e.waitActive(t, cj, starts[1])
	if n := fail.Load(); n >= 0 {
		t.Fatalf("the status write was not refused (%d refusals left)", n)
	}
	e.waitEvent(t, cj, "SuccessfulDelete", "Deleted job "+jobName(cj, starts[0]))
	e.noMissingJob(t, cj)
}

// noMissingJob fails the test if cj has a MissingJob event.
func (e *env) noMissingJob(t *testing.T, cj *batchv1.CronJob) {
	t.Helper()
	evs, err := e.events(cj)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Reason == "MissingJob" {
			t.Errorf("event %s: %s, for a job the controller replaced", ev.Reason, ev.Message)
		}
	}
}

// TestMissingJob: an active job deleted by someone else leaves the list,
// with Kubernetes' MissingJob event.
func TestMissingJob(t *testing.T) {
	e := start(t)
	cj, starts := e.create(t, newCronJob("missing", "*/1 * * * *"))
	e.stepTo(t, cj.Name, starts[0].Add(time.Second))
	e.waitActive(t, cj, starts[0])
	if err := e.cs.BatchV1().Jobs(ns).Delete(context.Background(), jobName(cj, starts[0]), metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	e.waitActive(t, cj)
	e.waitEvent(t, cj, "MissingJob", "Active job went missing: "+jobName(cj, starts[0]))
}

func TestAllowRunsConcurrently(t *testing.T) {
	e := start(t)
	cj, starts := e.create(t, newCronJob("allow", "*/1 * * * *"))
	e.stepTo(t, cj.Name, starts[0].Add(time.Second))
	e.waitActive(t, cj, starts[0])
	e.stepTo(t, cj.Name, starts[1].Add(time.Second))
	e.waitJobs(t, cj, starts[0], starts[1])
	e.waitActive(t, cj, starts[0], starts[1])
}

func TestSuspendStopsNewJobs(t *testing.T) {
	e := start(t)
	cj, starts := e.create(t, newCronJob("suspend", "*/1 * * * *"))
	e.stepTo(t, cj.Name, starts[0].Add(time.Second))
	e.waitActive(t, cj, starts[0])

	cur := e.cronJob(t, cj.Name)
	cur.Spec.Suspend = ptr.To(true)
	if _, err := e.cs.BatchV1().CronJobs(ns).Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitSeen(t, cj.Name, func(cj *batchv1.CronJob) bool { return *cj.Spec.Suspend })
	// Suspended, the controller still follows the running job, and
	// starts nothing at the next start times.
	e.clock.SetTime(starts[2].Add(time.Second))
	e.finish(t, cj, starts[0], batchv1.JobComplete)
	e.waitActive(t, cj)
	e.waitSynced(t, cj.Name, starts[2].Add(time.Second))
	if got := e.jobNames(t, cj); !slices.Equal(got, []string{jobName(cj, starts[0])}) {
		t.Fatalf("jobs while suspended: %v", got)
	}

	// Resumed, the most recent start time missed runs.
	cur = e.cronJob(t, cj.Name)
	cur.Spec.Suspend = ptr.To(false)
	if _, err := e.cs.BatchV1().CronJobs(ns).Update(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitJobs(t, cj, starts[0], starts[2])
	e.waitActive(t, cj, starts[2])
}

func TestStartingDeadlineSkipsLateStartTimes(t *testing.T) {
	e := start(t)
	in := newCronJob("deadline", "*/1 * * * *")
	in.Spec.StartingDeadlineSeconds = ptr.To[int64](10)
	cj, starts := e.create(t, in)

	// The controller was away for the first start time and is back 30 s
	// after it: too late for it.
	e.stepTo(t, cj.Name, starts[0].Add(30*time.Second))
	if got := e.jobNames(t, cj); len(got) != 0 {
		t.Fatalf("jobs started past the deadline: %v", got)
	}
	// Back 5 s after the next: in time.
	e.stepTo(t, cj.Name, starts[1].Add(5*time.Second))
	e.waitJobs(t, cj, starts[1])
	e.waitActive(t, cj, starts[1])
}

func TestTooManyMissedStartTimes(t *testing.T) {
	e := start(t)
	cj, starts := e.create(t, newCronJob("missed", "* * * * *"))
	// Three hours (180 start times) later: reported, and the most recent
	// one still runs.
	now := starts[0].Add(3*time.Hour + 30*time.Second)
	e.stepTo(t, cj.Name, now)
	e.waitEvent(t, cj, "TooManyMissedTimes", "too many missed start times")
	e.waitJobs(t, cj, now.Truncate(time.Minute))
}

func TestHistoryLimitsDeleteOldJobs(t *testing.T) {
	e := start(t)
	in := newCronJob("history", "*/1 * * * *")
	in.Spec.SuccessfulJobsHistoryLimit = ptr.To[int32](1)
	in.Spec.FailedJobsHistoryLimit = ptr.To[int32](1)
	cj, starts := e.create(t, in)
	for i, how := range []batchv1.JobConditionType{batchv1.JobComplete, batchv1.JobComplete, batchv1.JobFailed, batchv1.JobFailed} {
		e.stepTo(t, cj.Name, starts[i].Add(time.Second))
		e.waitActive(t, cj, starts[i])
		e.finish(t, cj, starts[i], how)
		e.waitActive(t, cj)
	}
	// Kept: the newest succeeded (1) and the newest failed (3).
	e.waitJobs(t, cj, starts[1], starts[3])
	e.waitEvent(t, cj, "SuccessfulDelete", "Deleted job "+jobName(cj, starts[0]))
	e.waitEvent(t, cj, "SuccessfulDelete", "Deleted job "+jobName(cj, starts[2]))
}

func TestTimeZone(t *testing.T) {
	e := start(t)
	in := newCronJob("kolkata", "0 9 * * *")
	in.Spec.TimeZone = ptr.To("Asia/Kolkata") // UTC+05:30, no daylight saving time
	cj, starts := e.create(t, in)
	if got := starts[0].UTC(); got.Hour() != 3 || got.Minute() != 30 {
		t.Fatalf("09:00 in Kolkata is %s", got)
	}
	e.stepTo(t, cj.Name, starts[0].Add(time.Second))
	e.waitJobs(t, cj, starts[0])
	job, err := e.cs.BatchV1().Jobs(ns).Get(context.Background(), jobName(cj, starts[0]), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts := job.Annotations[batchv1.CronJobScheduledTimestampAnnotation]
	if !strings.HasSuffix(ts, "T09:00:00+05:30") {
		t.Errorf("scheduled timestamp %q", ts)
	}
}

func TestJobNotCreatedByTheControllerIsReported(t *testing.T) {
	e := start(t)
	cj, _ := e.create(t, newCronJob("manual", "*/1 * * * *"))
	// As `kubectl create job --from=cronjob/manual` makes it.
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "manual-by-hand", Namespace: ns,
			Annotations:     map[string]string{"cronjob.kubernetes.io/instantiate": "manual"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, controllerKind)}},
		Spec: *cj.Spec.JobTemplate.Spec.DeepCopy(),
	}
	if _, err := e.cs.BatchV1().Jobs(ns).Create(context.Background(), job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitEvent(t, cj, "UnexpectedJob", "manual-by-hand")
	if got := e.cronJob(t, cj.Name); len(got.Status.Active) != 0 {
		t.Errorf("a job made by hand is active: %+v", got.Status.Active)
	}
}
