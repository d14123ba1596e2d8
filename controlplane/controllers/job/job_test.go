package job

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

const (
	ns       = "default"
	nodeName = "node-1"
)

// startCluster runs a control plane with one node and the test agent.
func startCluster(t *testing.T, policy func(*corev1.Pod) agentPlan) (*testcluster.Cluster, kubernetes.Interface) {
	t.Helper()
	c := testcluster.Start(t)
	cs := c.Client(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{"runtime.wasmfleet.io/wasm": "true"}}}
	if _, err := cs.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startAgent(t, cs, nodeName, policy)
	return c, cs
}

// startController runs a Job controller until the returned stop is called
// or the test ends.
func startController(t *testing.T, cs kubernetes.Interface) (stop func()) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(cs, 0)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctrl := New(cs, factory, log)
	if ctrl.Name() != Name {
		t.Fatalf("Name() = %q", ctrl.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx, 2) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			factory.Shutdown()
		})
	}
	t.Cleanup(stop)
	return stop
}

func newJob(name string, completions, parallelism *int32) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: batchv1.JobSpec{
			Completions: completions,
			Parallelism: parallelism,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "work", Image: "worker:1"}},
			}},
		},
	}
}

func createJob(t *testing.T, cs kubernetes.Interface, job *batchv1.Job) *batchv1.Job {
	t.Helper()
	got, err := cs.BatchV1().Jobs(ns).Create(context.Background(), job, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func getJob(t *testing.T, cs kubernetes.Interface, name string) *batchv1.Job {
	t.Helper()
	j, err := cs.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func condition(j *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	return findCondition(j, typ)
}

// waitCondition waits until the job has typ True and returns it.
func waitCondition(t *testing.T, cs kubernetes.Interface, name string, typ batchv1.JobConditionType) *batchv1.Job {
	t.Helper()
	var j *batchv1.Job
	testenv.Poll(t, fmt.Sprintf("job %s %s", name, typ), func() (bool, string) {
		j = getJob(t, cs, name)
		c := condition(j, typ)
		return c != nil && c.Status == corev1.ConditionTrue, fmt.Sprintf("%+v", j.Status)
	})
	return j
}

func jobPods(t *testing.T, cs kubernetes.Interface, job string) []corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + job})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// podWatch records every pod of a job it sees and the most pods it saw
// active (not finished, not being deleted) at once.
type podWatch struct {
	mu        sync.Mutex
	maxActive int
	seen      map[types.UID]bool
}

func watchPods(t *testing.T, cs kubernetes.Interface, job string) *podWatch {
	t.Helper()
	w := &podWatch{seen: map[types.UID]bool{}}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = batchv1.JobNameLabel + "=" + job }))
	inf := factory.Core().V1().Pods().Informer()
	check := func(any) {
		active := 0
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, obj := range inf.GetStore().List() {
			p := obj.(*corev1.Pod)
			w.seen[p.UID] = true
			if isActive(p) {
				active++
			}
		}
		w.maxActive = max(w.maxActive, active)
	}
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: check, UpdateFunc: func(_, cur any) { check(cur) }, DeleteFunc: check})
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)
	return w
}

func (w *podWatch) get() (maxActive, seen int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxActive, len(w.seen)
}

// waitNoFinalizers waits until no pod of job carries the tracking finalizer.
func waitNoFinalizers(t *testing.T, cs kubernetes.Interface, job string) {
	t.Helper()
	testenv.Poll(t, "finalizers removed", func() (bool, string) {
		for _, p := range jobPods(t, cs, job) {
			if hasTrackingFinalizer(&p) {
				return false, p.Name + " still has the finalizer"
			}
		}
		return true, ""
	})
}

func succeedAfter(d time.Duration) func(*corev1.Pod) agentPlan {
	return func(*corev1.Pod) agentPlan {
		return agentPlan{ReadyAfter: 20 * time.Millisecond, Finish: corev1.PodSucceeded, FinishAfter: d}
	}
}

func TestCompletionsWithParallelism(t *testing.T) {
	c, cs := startCluster(t, succeedAfter(300*time.Millisecond))
	startController(t, cs)
	w := watchPods(t, cs, "batch")
	job := createJob(t, cs, newJob("batch", new(int32(3)), new(int32(2))))
	if job.Spec.Selector == nil || job.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel] != string(job.UID) {
		t.Fatalf("apiserver did not generate the selector: %+v", job.Spec.Selector)
	}
	testenv.MustKubectl(t, c.Kubeconfig(), t.TempDir(), "", "-n", ns, "wait", "--for=condition=complete", "job/batch", "--timeout=60s")

	j := getJob(t, cs, "batch")
	st := j.Status
	if st.Succeeded != 3 || st.Failed != 0 || st.Active != 0 || st.Ready == nil || *st.Ready != 0 || st.Terminating == nil || *st.Terminating != 0 {
		t.Errorf("status counters: %+v", st)
	}
	if st.StartTime == nil || st.CompletionTime == nil || st.CompletionTime.Before(st.StartTime) {
		t.Errorf("startTime %v completionTime %v", st.StartTime, st.CompletionTime)
	}
	if u := st.UncountedTerminatedPods; u != nil && len(u.Succeeded)+len(u.Failed) > 0 {
		t.Errorf("uncounted pods left: %+v", u)
	}
	scm, complete := condition(j, batchv1.JobSuccessCriteriaMet), condition(j, batchv1.JobComplete)
	if scm == nil || scm.Status != corev1.ConditionTrue || scm.Reason != batchv1.JobReasonCompletionsReached {
		t.Errorf("SuccessCriteriaMet = %+v", scm)
	}
	if complete.Reason != batchv1.JobReasonCompletionsReached || complete.Message != msgCompletionsReached {
		t.Errorf("Complete = %+v", complete)
	}
	if scm != nil && complete.LastTransitionTime.Before(&scm.LastTransitionTime) {
		t.Errorf("Complete (%v) before SuccessCriteriaMet (%v)", complete.LastTransitionTime, scm.LastTransitionTime)
	}
	if condition(j, batchv1.JobFailed) != nil || condition(j, batchv1.JobFailureTarget) != nil {
		t.Errorf("failure conditions on a complete job: %+v", j.Status.Conditions)
	}
	maxActive, seen := w.get()
	if maxActive > 2 {
		t.Errorf("%d pods active at once; parallelism is 2", maxActive)
	}
	if seen != 3 {
		t.Errorf("%d pods created for 3 completions", seen)
	}
	pods := jobPods(t, cs, "batch")
	for _, p := range pods {
		for k, v := range map[string]string{
			batchv1.ControllerUidLabel: string(j.UID), legacyControllerUIDLabel: string(j.UID),
			batchv1.JobNameLabel: "batch", legacyJobNameLabel: "batch",
		} {
			if p.Labels[k] != v {
				t.Errorf("pod %s label %s = %q, want %q", p.Name, k, p.Labels[k], v)
			}
		}
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != j.UID {
			t.Errorf("pod %s controller = %+v", p.Name, ref)
		}
	}
	waitNoFinalizers(t, cs, "batch")
	testenv.Poll(t, "events", func() (bool, string) {
		evs, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		reasons := map[string]int{}
		var all []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "Job" && e.InvolvedObject.Name == "batch" {
				reasons[e.Reason] += int(max(e.Count, 1))
				all = append(all, fmt.Sprintf("%s/%s count=%d %s", e.Name, e.Reason, e.Count, e.Message))
			}
		}
		return reasons[reasonSuccessfulCreate] == 3 && reasons[reasonCompleted] == 1, fmt.Sprint(reasons, all)
	})
}

func TestWorkQueueJob(t *testing.T) {
	_, cs := startCluster(t, succeedAfter(200*time.Millisecond))
	startController(t, cs)
	createJob(t, cs, newJob("queue", nil, new(int32(2))))
	j := waitCondition(t, cs, "queue", batchv1.JobComplete)
	if j.Status.Succeeded < 1 || j.Status.Active != 0 || j.Status.Failed != 0 {
		t.Errorf("status: %+v", j.Status)
	}
}

func TestBackoffLimitExceeded(t *testing.T) {
	_, cs := startCluster(t, func(*corev1.Pod) agentPlan {
		return agentPlan{ReadyAfter: 20 * time.Millisecond, Finish: corev1.PodFailed, FinishAfter: 100 * time.Millisecond, ExitCode: 3}
	})
	startController(t, cs)
	job := newJob("flaky", nil, nil)
	job.Spec.BackoffLimit = new(int32(1))
	createJob(t, cs, job)
	j := waitCondition(t, cs, "flaky", batchv1.JobFailed)
	failed := condition(j, batchv1.JobFailed)
	if failed.Reason != batchv1.JobReasonBackoffLimitExceeded || failed.Message != msgBackoffLimitExceeded {
		t.Errorf("Failed = %+v", failed)
	}
	if ft := condition(j, batchv1.JobFailureTarget); ft == nil || ft.Reason != batchv1.JobReasonBackoffLimitExceeded {
		t.Errorf("FailureTarget = %+v", ft)
	}
	if j.Status.Failed != 2 || j.Status.Succeeded != 0 || j.Status.Active != 0 || j.Status.CompletionTime != nil {
		t.Errorf("status: %+v", j.Status)
	}
	pods := jobPods(t, cs, "flaky")
	if len(pods) != 2 {
		t.Fatalf("%d pods, want 2 (one per allowed attempt)", len(pods))
	}
	// The replacement waited out the 10 s back-off after the first failure.
	first, second := pods[0], pods[1]
	if second.CreationTimestamp.Before(&first.CreationTimestamp) {
		first, second = second, first
	}
	finished := finishedTime(&first)
	if gap := second.CreationTimestamp.Sub(finished); gap < DefaultPodFailureBackOff-time.Second {
		t.Errorf("replacement created %v after the failure; back-off is %v", gap, DefaultPodFailureBackOff)
	}
	waitNoFinalizers(t, cs, "flaky")
}

func TestActiveDeadline(t *testing.T) {
	_, cs := startCluster(t, func(*corev1.Pod) agentPlan { return agentPlan{ReadyAfter: 20 * time.Millisecond} })
	startController(t, cs)
	job := newJob("slow", new(int32(4)), new(int32(2)))
	job.Spec.ActiveDeadlineSeconds = new(int64(2))
	createJob(t, cs, job)
	j := waitCondition(t, cs, "slow", batchv1.JobFailed)
	failed := condition(j, batchv1.JobFailed)
	if failed.Reason != batchv1.JobReasonDeadlineExceeded || failed.Message != msgDeadlineExceeded {
		t.Errorf("Failed = %+v", failed)
	}
	if ft := condition(j, batchv1.JobFailureTarget); ft == nil || ft.Reason != batchv1.JobReasonDeadlineExceeded {
		t.Errorf("FailureTarget = %+v", ft)
	}
	if j.Status.Active != 0 || j.Status.Failed != 2 || *j.Status.Terminating != 0 {
		t.Errorf("status: %+v", j.Status)
	}
	testenv.Poll(t, "pods deleted", func() (bool, string) {
		pods := jobPods(t, cs, "slow")
		return len(pods) == 0, fmt.Sprintf("%d pods left", len(pods))
	})
}

func TestFinishedPodDeletedByHandCountedOnce(t *testing.T) {
	gate := make(chan struct{})
	_, cs := startCluster(t, func(*corev1.Pod) agentPlan {
		return agentPlan{ReadyAfter: 20 * time.Millisecond, Finish: corev1.PodSucceeded, Gate: gate}
	})
	stop := startController(t, cs)
	w := watchPods(t, cs, "hand")
	createJob(t, cs, newJob("hand", new(int32(2)), new(int32(2))))
	testenv.Poll(t, "2 pods running", func() (bool, string) {
		j := getJob(t, cs, "hand")
		return j.Status.Active == 2 && j.Status.Ready != nil && *j.Status.Ready == 2, fmt.Sprintf("%+v", j.Status)
	})
	// With the controller down, both pods succeed and one is deleted by hand.
	stop()
	close(gate)
	testenv.Poll(t, "pods succeeded", func() (bool, string) {
		pods := jobPods(t, cs, "hand")
		n := 0
		for _, p := range pods {
			if p.Status.Phase == corev1.PodSucceeded {
				n++
			}
		}
		return n == 2, fmt.Sprintf("%d of %d succeeded", n, len(pods))
	})
	victim := jobPods(t, cs, "hand")[0]
	if err := cs.CoreV1().Pods(ns).Delete(context.Background(), victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	held, err := cs.CoreV1().Pods(ns).Get(context.Background(), victim.Name, metav1.GetOptions{})
	if err != nil || held.DeletionTimestamp == nil || !hasTrackingFinalizer(held) {
		t.Fatalf("the finalizer should hold the uncounted pod: %v %+v", err, held)
	}

	startController(t, cs)
	j := waitCondition(t, cs, "hand", batchv1.JobComplete)
	if j.Status.Succeeded != 2 || j.Status.Failed != 0 {
		t.Errorf("status: %+v", j.Status)
	}
	testenv.Poll(t, "deleted pod gone", func() (bool, string) {
		_, err := cs.CoreV1().Pods(ns).Get(context.Background(), victim.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	// Deleting the other one after it was counted changes nothing.
	rest := jobPods(t, cs, "hand")
	if len(rest) != 1 {
		t.Fatalf("%d pods left, want 1", len(rest))
	}
	if err := cs.CoreV1().Pods(ns).Delete(context.Background(), rest[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, "counted pod gone at once", func() (bool, string) {
		_, err := cs.CoreV1().Pods(ns).Get(context.Background(), rest[0].Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if j := getJob(t, cs, "hand"); j.Status.Succeeded != 2 {
		t.Errorf("succeeded = %d after deleting a counted pod", j.Status.Succeeded)
	}
	if _, seen := w.get(); seen != 2 {
		t.Errorf("%d pods created, want 2", seen)
	}
}

func TestSuspendAndResume(t *testing.T) {
	gate := make(chan struct{})
	_, cs := startCluster(t, func(*corev1.Pod) agentPlan {
		return agentPlan{ReadyAfter: 20 * time.Millisecond, Finish: corev1.PodSucceeded, Gate: gate}
	})
	startController(t, cs)
	job := newJob("paused", new(int32(2)), new(int32(2)))
	job.Spec.Suspend = new(true)
	createJob(t, cs, job)
	j := waitCondition(t, cs, "paused", batchv1.JobSuspended)
	if c := condition(j, batchv1.JobSuspended); c.Reason != "JobSuspended" || c.Message != "Job suspended" {
		t.Errorf("Suspended = %+v", c)
	}
	if j.Status.StartTime != nil || j.Status.Active != 0 || len(jobPods(t, cs, "paused")) != 0 {
		t.Errorf("a suspended job started: %+v", j.Status)
	}

	setSuspend := func(v bool) {
		t.Helper()
		patch := fmt.Sprintf(`{"spec":{"suspend":%v}}`, v)
		if _, err := cs.BatchV1().Jobs(ns).Patch(context.Background(), "paused", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setSuspend(false)
	testenv.Poll(t, "resumed", func() (bool, string) {
		j = getJob(t, cs, "paused")
		c := condition(j, batchv1.JobSuspended)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == "JobResumed" && j.Status.Active == 2 && j.Status.StartTime != nil,
			fmt.Sprintf("%+v", j.Status)
	})

	setSuspend(true)
	testenv.Poll(t, "suspended again", func() (bool, string) {
		j = getJob(t, cs, "paused")
		c := condition(j, batchv1.JobSuspended)
		return c != nil && c.Status == corev1.ConditionTrue && j.Status.Active == 0 && len(jobPods(t, cs, "paused")) == 0 &&
			j.Status.Terminating != nil && *j.Status.Terminating == 0, fmt.Sprintf("%+v", j.Status)
	})
	if j.Status.Failed != 0 {
		t.Errorf("pods deleted by suspension counted as failed: %+v", j.Status)
	}

	close(gate)
	setSuspend(false)
	j = waitCondition(t, cs, "paused", batchv1.JobComplete)
	if j.Status.Succeeded != 2 || j.Status.Failed != 0 {
		t.Errorf("status: %+v", j.Status)
	}
}

func TestManagedByAnotherController(t *testing.T) {
	_, cs := startCluster(t, succeedAfter(100*time.Millisecond))
	startController(t, cs)
	ctx := t.Context()

	// A job another controller runs, which that controller has finished,
	// with a pod of it that still holds the tracking finalizer.
	ext := newJob("external", nil, nil)
	ext.Spec.ManagedBy = new("example.com/batch-controller")
	ext = createJob(t, cs, ext)
	ext.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached},
	}
	ext.Status.StartTime = &metav1.Time{Time: time.Now()}
	ext.Status.CompletionTime = ext.Status.StartTime
	ext, err := cs.BatchV1().Jobs(ns).UpdateStatus(ctx, ext, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, newPod(ext, noIndex), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// And one it has not started.
	idle := newJob("idle", new(int32(2)), new(int32(2)))
	idle.Spec.ManagedBy = new("example.com/batch-controller")
	createJob(t, cs, idle)

	// Jobs that name this controller, or none, run.
	own := newJob("own", nil, nil)
	own.Spec.ManagedBy = new(batchv1.JobControllerName)
	createJob(t, cs, own)
	createJob(t, cs, newJob("plain", nil, nil))
	waitCondition(t, cs, "own", batchv1.JobComplete)
	waitCondition(t, cs, "plain", batchv1.JobComplete)
	waitNoFinalizers(t, cs, "own")
	waitNoFinalizers(t, cs, "plain")

	if j := getJob(t, cs, "idle"); len(jobPods(t, cs, "idle")) != 0 || j.Status.StartTime != nil || len(j.Status.Conditions) != 0 || j.Status.Ready != nil {
		t.Errorf("the controller touched a job managed elsewhere: %+v, %d pods", j.Status, len(jobPods(t, cs, "idle")))
	}
	if j := getJob(t, cs, "external"); j.ResourceVersion != ext.ResourceVersion {
		t.Errorf("the controller wrote the status of a job managed elsewhere: %+v", j.Status)
	}
	got, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasTrackingFinalizer(got) {
		t.Errorf("the tracking finalizer of a pod of a job managed elsewhere was removed: %v", got.Finalizers)
	}
	// Let the pod go.
	patch := []byte(`{"metadata":{"$deleteFromPrimitiveList/finalizers":["` + batchv1.JobTrackingFinalizer + `"]}}`)
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}
