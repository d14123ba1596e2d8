package ttlafterfinished

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/util/retry"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/gc"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

const (
	ns   = "default"
	hold = "example.com/hold" // a finalizer the tests hold objects with
)

// env is a control plane (embedded etcd and NATS) with the controller on a
// fake clock and the garbage collector (for the foreground deletions). No
// Job controller runs: tests finish jobs by writing their status.
type env struct {
	cs    kubernetes.Interface
	clock *clocktesting.FakeClock
	ctrl  *Controller
	log   *slog.Logger
	start time.Time // the clock's start, a whole second as API times

	syncs   *testenv.Syncs
	mu      sync.Mutex
	deletes []string // the paths the controller sent DELETE to
}

func startEnv(t *testing.T) *env {
	t.Helper()
	c := testcluster.Start(t)
	now := time.Now().Truncate(time.Second)
	e := &env{
		cs:    c.Client(t),
		clock: clocktesting.NewFakeClock(now),
		log:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		start: now,
		syncs: testenv.NewSyncs(),
	}
	rc := c.RESTConfig(t)
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodDelete {
				e.mu.Lock()
				e.deletes = append(e.deletes, req.URL.Path)
				e.mu.Unlock()
			}
			return rt.RoundTrip(req)
		})
	})
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactory(e.cs, 0)
	e.ctrl = New(client, factory, Options{Clock: e.clock}, e.log)
	if e.ctrl.Name() != Name {
		t.Fatalf("Name() = %q", e.ctrl.Name())
	}
	e.ctrl.synced = e.syncs.Synced
	mc, err := metadata.NewForConfig(c.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 2)
	go func() { done <- e.ctrl.Run(ctx, 2) }()
	go func() { done <- gc.New(e.cs, mc, gc.Options{}, e.log).Run(ctx, 1) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			// A test may end before a controller's caches synced.
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		}
		factory.Shutdown()
	})
	return e
}

// roundTripper is a func as an http.RoundTripper.
type roundTripper func(*http.Request) (*http.Response, error)

// RoundTrip implements http.RoundTripper.
func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// deleted reports whether the controller sent a DELETE for the job name.
func (e *env) deleted(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.deletes, "/apis/batch/v1/namespaces/"+ns+"/jobs/"+name)
}

// create stores a Job named name with ttl (nil: no ttlSecondsAfterFinished)
// and finalizers.
func (e *env) create(t *testing.T, name string, ttl *int32, finalizers ...string) *batchv1.Job {
	t.Helper()
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Finalizers: finalizers},
		Spec: batchv1.JobSpec{
			TTLSecondsAfterFinished: ttl,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "main", Image: "worker:v1"}},
			}},
		},
	}
	j, err := e.cs.BatchV1().Jobs(ns).Create(context.Background(), j, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// finish writes a finished status (condition how, True) on the job name,
// finished at the clock's time.
func (e *env) finish(t *testing.T, name string, how batchv1.JobConditionType) {
	t.Helper()
	at := metav1.NewTime(e.clock.Now())
	jobs := e.cs.BatchV1().Jobs(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		j, err := jobs.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		j.Status.StartTime = &at
		if how == batchv1.JobComplete {
			j.Status.CompletionTime = &at
			j.Status.Succeeded = 1
		} else {
			j.Status.Failed = 1
		}
		j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: how, Status: corev1.ConditionTrue, LastTransitionTime: at})
		_, err = jobs.UpdateStatus(context.Background(), j, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// update changes the job name with change, retrying on conflicts.
func (e *env) update(t *testing.T, name string, change func(*batchv1.Job)) {
	t.Helper()
	jobs := e.cs.BatchV1().Jobs(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		j, err := jobs.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(j)
		_, err = jobs.Update(context.Background(), j, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitSynced waits for a sync of the job name that read at (or later) from
// the clock and finished.
func (e *env) waitSynced(t *testing.T, name string, at time.Time) {
	t.Helper()
	e.syncs.Wait(t, ns+"/"+name, at, 20*time.Second)
}

// waitSeen waits until the controller's cache holds a version of the job
// name that satisfies ok.
func (e *env) waitSeen(t *testing.T, name string, ok func(*batchv1.Job) bool) {
	t.Helper()
	testenv.Poll(t, "the controller to see "+name, func() (bool, string) {
		j, err := e.ctrl.jobLister.Jobs(ns).Get(name)
		if err != nil {
			return false, err.Error()
		}
		return ok(j), fmt.Sprintf("%+v", j.Spec)
	})
}

// job reads the job name from the API; nil when it is gone.
func (e *env) job(t *testing.T, name string) *batchv1.Job {
	t.Helper()
	j, err := e.cs.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// mustStay fails the test unless the job name exists and is not being
// deleted.
func (e *env) mustStay(t *testing.T, name string) {
	t.Helper()
	j := e.job(t, name)
	if j == nil {
		t.Fatalf("job %s was deleted", name)
	}
	if j.DeletionTimestamp != nil {
		t.Fatalf("job %s is being deleted (finalizers %v)", name, j.Finalizers)
	}
}

// waitGone waits until the job name is gone from the API.
func (e *env) waitGone(t *testing.T, name string) {
	t.Helper()
	testenv.Poll(t, "job "+name+" to be deleted", func() (bool, string) {
		j := e.job(t, name)
		if j == nil {
			return true, ""
		}
		return false, fmt.Sprintf("deletionTimestamp %v, finalizers %v", j.DeletionTimestamp, j.Finalizers)
	})
}

// waitCollectorSeesPods waits until the garbage collector's cache holds
// the pods created so far: it deletes a pod created after them whose owner
// never existed, which it sees after them (a watch is ordered). Else a
// foreground deletion could find no dependents in a cache behind the API.
func (e *env) waitCollectorSeesPods(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	canary := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "canary", Namespace: ns,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "ghost", UID: "ghost-uid"}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "worker:v1"}}},
	}
	if _, err := e.cs.CoreV1().Pods(ns).Create(ctx, canary, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, "the garbage collector to delete the canary pod", func() (bool, string) {
		_, err := e.cs.CoreV1().Pods(ns).Get(ctx, "canary", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

// TestTTLZeroDeletesAtOnce: a Job with ttlSecondsAfterFinished 0 is
// deleted as soon as it finishes, Complete or Failed, without the clock
// moving.
func TestTTLZeroDeletesAtOnce(t *testing.T) {
	e := startEnv(t)
	e.create(t, "done", new(int32(0)))
	e.create(t, "broken", new(int32(0)))
	e.finish(t, "done", batchv1.JobComplete)
	e.finish(t, "broken", batchv1.JobFailed)
	e.waitGone(t, "done")
	e.waitGone(t, "broken")
}

// TestDeletedWithItsPodsOnceTTLRunsOut: a Job with a TTL of 30 s stays
// until 30 s after it finished, then is deleted in the foreground: it
// waits (foregroundDeletion finalizer) while the garbage collector deletes
// its pod, which a finalizer of the test holds, and goes with it.
func TestDeletedWithItsPodsOnceTTLRunsOut(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	job := e.create(t, "pi", new(int32(30)))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "pi-1", Namespace: ns, Finalizers: []string{hold},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
				Controller: new(true), BlockOwnerDeletion: new(true),
			}},
		},
		Spec: job.Spec.Template.Spec,
	}
	if _, err := e.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitCollectorSeesPods(t)
	e.finish(t, "pi", batchv1.JobComplete)
	e.waitSynced(t, "pi", e.start)
	e.mustStay(t, "pi")

	// A second before expiry a change syncs the Job again: it stays.
	e.clock.SetTime(e.start.Add(29 * time.Second))
	e.update(t, "pi", func(j *batchv1.Job) { j.Labels = map[string]string{"touched": "yes"} })
	e.waitSynced(t, "pi", e.start.Add(29*time.Second))
	e.mustStay(t, "pi")

	// At expiry the wake-up deletes it, in the foreground.
	e.clock.SetTime(e.start.Add(30 * time.Second))
	testenv.Poll(t, "foreground deletion of the job and its pod", func() (bool, string) {
		j := e.job(t, "pi")
		p, err := e.cs.CoreV1().Pods(ns).Get(ctx, "pi-1", metav1.GetOptions{})
		if j == nil || err != nil {
			t.Fatalf("job %v or pod (%v) gone while the pod's finalizer holds it", j, err)
		}
		return j.DeletionTimestamp != nil && slices.Contains(j.Finalizers, metav1.FinalizerDeleteDependents) && p.DeletionTimestamp != nil,
			fmt.Sprintf("job deletionTimestamp %v finalizers %v, pod deletionTimestamp %v", j.DeletionTimestamp, j.Finalizers, p.DeletionTimestamp)
	})
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := e.cs.CoreV1().Pods(ns).Get(ctx, "pi-1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Finalizers = nil
		_, err = e.cs.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.waitGone(t, "pi")
	if _, err := e.cs.CoreV1().Pods(ns).Get(ctx, "pi-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pod after the job went: %v", err)
	}
}

// TestRaisedTTLHolds: a TTL raised from 30 s to 120 s before the first
// ran out holds: the wake-up at 30 s leaves the Job, the one at 120 s
// deletes it.
func TestRaisedTTLHolds(t *testing.T) {
	e := startEnv(t)
	e.create(t, "pi", new(int32(30)))
	e.finish(t, "pi", batchv1.JobComplete)
	e.waitSynced(t, "pi", e.start)
	e.update(t, "pi", func(j *batchv1.Job) { j.Spec.TTLSecondsAfterFinished = new(int32(120)) })
	e.waitSeen(t, "pi", func(j *batchv1.Job) bool { return *j.Spec.TTLSecondsAfterFinished == 120 })

	e.clock.SetTime(e.start.Add(30 * time.Second))
	e.waitSynced(t, "pi", e.start.Add(30*time.Second))
	e.mustStay(t, "pi")

	e.clock.SetTime(e.start.Add(120 * time.Second))
	e.waitGone(t, "pi")
}

// TestStaleCacheReadsTheJobAgain: when the cache holds a Job whose TTL
// has run out but the API has it raised, the sync reads the Job again and
// leaves it, with a wake-up at the raised TTL's expiry.
func TestStaleCacheReadsTheJobAgain(t *testing.T) {
	e := startEnv(t)
	e.create(t, "pi", new(int32(30)))
	e.finish(t, "pi", batchv1.JobComplete)
	stale := e.job(t, "pi")
	e.update(t, "pi", func(j *batchv1.Job) { j.Spec.TTLSecondsAfterFinished = new(int32(120)) })

	// A controller of its own, not running, whose cache holds the stale Job.
	factory := informers.NewSharedInformerFactory(e.cs, 0)
	clk := clocktesting.NewFakeClock(e.start.Add(30 * time.Second))
	ctrl := New(e.cs, factory, Options{Clock: clk}, e.log)
	defer ctrl.wakeups.Stop()
	if err := factory.Batch().V1().Jobs().Informer().GetIndexer().Add(stale); err != nil {
		t.Fatal(err)
	}
	if err := ctrl.sync(context.Background(), ns+"/pi"); err != nil {
		t.Fatal(err)
	}
	e.mustStay(t, "pi")
	clk.Step(89 * time.Second)
	if n := ctrl.queue.Len(); n != 0 {
		t.Fatalf("queued %d keys before the raised TTL's expiry", n)
	}
	clk.Step(time.Second)
	if n := ctrl.queue.Len(); n != 1 {
		t.Fatalf("queued %d keys at the raised TTL's expiry, want 1", n)
	}
}

// TestJobsNotToCleanUpStay: a Job that has not finished, one without
// ttlSecondsAfterFinished and one already being deleted are left alone,
// however late it is, while a finished Job with a TTL of 0 created after
// them goes.
func TestJobsNotToCleanUpStay(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	e.create(t, "running", new(int32(0)))
	e.create(t, "kept", nil)
	e.finish(t, "kept", batchv1.JobComplete)
	e.create(t, "deleting", new(int32(0)), hold)
	if err := e.cs.BatchV1().Jobs(ns).Delete(ctx, "deleting", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.finish(t, "deleting", batchv1.JobComplete)
	e.create(t, "done", new(int32(0)))
	e.finish(t, "done", batchv1.JobComplete)
	e.waitGone(t, "done")

	e.clock.Step(24 * time.Hour)
	for _, name := range []string{"running", "kept", "deleting"} {
		e.waitSeen(t, name, func(*batchv1.Job) bool { return true })
		if err := e.ctrl.sync(ctx, ns+"/"+name); err != nil {
			t.Fatalf("sync %s: %v", name, err)
		}
	}
	e.mustStay(t, "running")
	e.mustStay(t, "kept")
	for _, name := range []string{"running", "kept", "deleting"} {
		if e.deleted(name) {
			t.Errorf("job %s deleted", name)
		}
	}
	if !e.deleted("done") {
		t.Errorf("no DELETE of job done seen")
	}
	e.update(t, "deleting", func(j *batchv1.Job) { j.Finalizers = nil })
	e.waitGone(t, "deleting")
}

// TestFinishTime: a Job finished when its finished condition last changed,
// else (no lastTransitionTime) at its completionTime; without either it
// has no finish time.
func TestFinishTime(t *testing.T) {
	at := time.Date(2026, 11, 28, 7, 0, 0, 0, time.UTC)
	done := metav1.NewTime(at.Add(time.Minute))
	running := batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(at.Add(time.Hour))}
	for _, tc := range []struct {
		name   string
		status batchv1.JobStatus
		want   time.Time
		err    bool
	}{
		{"condition", batchv1.JobStatus{CompletionTime: &done, Conditions: []batchv1.JobCondition{running,
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)}}}, at, false},
		{"completionTime", batchv1.JobStatus{CompletionTime: &done, Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}, done.Time, false},
		{"neither", batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}}, time.Time{}, true},
	} {
		got, err := finishTime(&batchv1.Job{Status: tc.status})
		if !got.Equal(tc.want) || (err != nil) != tc.err {
			t.Errorf("%s: finishTime = %v, %v; want %v (error %v)", tc.name, got, err, tc.want, tc.err)
		}
	}
}
