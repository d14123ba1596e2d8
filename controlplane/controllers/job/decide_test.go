package job

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestWantActiveAndComplete(t *testing.T) {
	tests := []struct {
		name                     string
		completions, parallelism *int32
		active, succeeded        int32
		want                     int32
		complete                 bool
	}{
		{name: "fresh", completions: new(int32(3)), parallelism: new(int32(2)), want: 2},
		{name: "never more than remaining", completions: new(int32(3)), parallelism: new(int32(2)), active: 1, succeeded: 2, want: 1},
		{name: "done", completions: new(int32(3)), parallelism: new(int32(2)), succeeded: 3, want: 0, complete: true},
		{name: "done but a pod still runs", completions: new(int32(3)), parallelism: new(int32(2)), active: 1, succeeded: 3, want: 0},
		{name: "parallelism 0", completions: new(int32(3)), parallelism: new(int32(0)), want: 0},
		{name: "work queue", parallelism: new(int32(3)), want: 3},
		{name: "work queue after a success keeps what runs", parallelism: new(int32(3)), active: 2, succeeded: 1, want: 2},
		{name: "work queue complete", parallelism: new(int32(3)), succeeded: 1, complete: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := &batchv1.Job{Spec: batchv1.JobSpec{Completions: tt.completions, Parallelism: tt.parallelism}}
			if got := wantActive(job, tt.active, tt.succeeded); got != tt.want {
				t.Errorf("wantActive = %d, want %d", got, tt.want)
			}
			if got := isComplete(job, tt.active, tt.succeeded); got != tt.complete {
				t.Errorf("isComplete = %v, want %v", got, tt.complete)
			}
		})
	}
}

func TestIsPodFailed(t *testing.T) {
	deleted := &metav1.Time{Time: t0}
	onlyFailed := &batchv1.Job{Spec: batchv1.JobSpec{PodReplacementPolicy: new(batchv1.Failed)}}
	anyJob := &batchv1.Job{}
	tests := []struct {
		name string
		pod  corev1.Pod
		job  *batchv1.Job
		want bool
	}{
		{name: "failed", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed}}, job: anyJob, want: true},
		{name: "running", pod: corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}, job: anyJob},
		{name: "deleted while running", pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: deleted}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}, job: anyJob, want: true},
		{name: "deleted after success", pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: deleted}, Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, job: anyJob},
		{name: "deleted while running, only failed replaced", pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: deleted}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}, job: onlyFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isPodFailed(&tt.pod, tt.job); got != tt.want {
				t.Errorf("isPodFailed = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCleanUncounted(t *testing.T) {
	st := &batchv1.JobStatus{
		Succeeded: 1, Failed: 2,
		UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{Succeeded: []types.UID{"a", "b"}, Failed: []types.UID{"c"}},
	}
	if !cleanUncounted(st, sets.New[types.UID]("b")) {
		t.Fatal("no change reported")
	}
	if st.Succeeded != 2 || st.Failed != 3 || len(st.UncountedTerminatedPods.Succeeded) != 1 || st.UncountedTerminatedPods.Succeeded[0] != "b" || len(st.UncountedTerminatedPods.Failed) != 0 {
		t.Errorf("status = %+v %+v", st, st.UncountedTerminatedPods)
	}
	if cleanUncounted(st, sets.New[types.UID]("b")) {
		t.Error("second clean changed something")
	}
}

func TestPastBackoffLimitOnFailure(t *testing.T) {
	running := func(restarts ...int32) *corev1.Pod {
		p := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		for _, r := range restarts {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{RestartCount: r})
		}
		return p
	}
	tests := []struct {
		name   string
		policy corev1.RestartPolicy
		limit  int32
		pods   []*corev1.Pod
		want   bool
	}{
		{name: "never policy ignores restarts", policy: corev1.RestartPolicyNever, limit: 1, pods: []*corev1.Pod{running(5)}},
		{name: "below limit", policy: corev1.RestartPolicyOnFailure, limit: 3, pods: []*corev1.Pod{running(1), running(1)}},
		{name: "sum reaches limit", policy: corev1.RestartPolicyOnFailure, limit: 3, pods: []*corev1.Pod{running(1, 1), running(1)}, want: true},
		{name: "limit 0, one restart", policy: corev1.RestartPolicyOnFailure, limit: 0, pods: []*corev1.Pod{running(1)}, want: true},
		{name: "limit 0, none", policy: corev1.RestartPolicyOnFailure, limit: 0, pods: []*corev1.Pod{running(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := &batchv1.Job{Spec: batchv1.JobSpec{BackoffLimit: &tt.limit, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: tt.policy}}}}
			if got := pastBackoffLimitOnFailure(job, tt.pods); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func finishedAt(phase corev1.PodPhase, at time.Time) *corev1.Pod {
	return &corev1.Pod{Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(at)}},
	}}}}
}

func TestBackoff(t *testing.T) {
	var r backoffRecord
	if d := r.remaining(t0); d != 0 {
		t.Errorf("no failures: %v", d)
	}
	r = r.next(nil, []*corev1.Pod{finishedAt(corev1.PodFailed, t0)})
	if d := r.remaining(t0.Add(3 * time.Second)); d != 7*time.Second {
		t.Errorf("after 1 failure: %v", d)
	}
	r = r.next(nil, []*corev1.Pod{finishedAt(corev1.PodFailed, t0.Add(time.Minute))})
	if d := r.remaining(t0.Add(time.Minute)); d != 20*time.Second {
		t.Errorf("after 2 failures: %v", d)
	}
	for range 10 {
		r = r.next(nil, []*corev1.Pod{finishedAt(corev1.PodFailed, t0.Add(time.Hour))})
	}
	if d := r.remaining(t0.Add(time.Hour)); d != MaxPodFailureBackOff {
		t.Errorf("capped: %v", d)
	}
	// A success resets the count, except failures after it.
	r = r.next([]*corev1.Pod{finishedAt(corev1.PodSucceeded, t0.Add(2*time.Hour))},
		[]*corev1.Pod{finishedAt(corev1.PodFailed, t0.Add(time.Hour)), finishedAt(corev1.PodFailed, t0.Add(3*time.Hour))})
	if r.failuresAfterLastSuccess != 1 || !r.lastFailureTime.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("after a success: %+v", r)
	}
	r = r.next([]*corev1.Pod{finishedAt(corev1.PodSucceeded, t0.Add(4*time.Hour))}, nil)
	if d := r.remaining(t0.Add(4 * time.Hour)); d != 0 {
		t.Errorf("after the last success: %v", d)
	}
}

func TestPastActiveDeadline(t *testing.T) {
	start := &metav1.Time{Time: t0}
	job := &batchv1.Job{Spec: batchv1.JobSpec{ActiveDeadlineSeconds: new(int64(10))}, Status: batchv1.JobStatus{StartTime: start}}
	if pastActiveDeadline(job, t0.Add(9*time.Second)) {
		t.Error("past at 9s")
	}
	if !pastActiveDeadline(job, t0.Add(10*time.Second)) {
		t.Error("not past at 10s")
	}
	job.Spec.Suspend = new(true)
	if pastActiveDeadline(job, t0.Add(time.Hour)) {
		t.Error("a suspended job is past its deadline")
	}
}

func TestActivePodsForRemoval(t *testing.T) {
	mk := func(name, node string, phase corev1.PodPhase, ready bool, age time.Duration) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0.Add(-age))},
			Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
		if ready {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		return p
	}
	pods := []*corev1.Pod{
		mk("ready-old", "n", corev1.PodRunning, true, time.Hour),
		mk("ready-young", "n", corev1.PodRunning, true, time.Minute),
		mk("unready", "n", corev1.PodRunning, false, time.Hour),
		mk("pending", "n", corev1.PodPending, false, time.Hour),
		mk("unbound", "", corev1.PodPending, false, time.Hour),
	}
	got := activePodsForRemoval(pods, 4)
	want := []string{"unbound", "pending", "unready", "ready-young"}
	for i := range want {
		if got[i].Name != want[i] {
			t.Fatalf("order %d = %s, want %s", i, got[i].Name, want[i])
		}
	}
}

func TestSetCondition(t *testing.T) {
	st := &batchv1.JobStatus{}
	if setCondition(st, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", t0) {
		t.Error("a False condition was added to a job that never had it")
	}
	if !setCondition(st, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", t0) || len(st.Conditions) != 1 {
		t.Fatalf("conditions: %+v", st.Conditions)
	}
	if setCondition(st, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", t0.Add(time.Minute)) {
		t.Error("unchanged condition reported a change")
	}
	if !setCondition(st, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", t0.Add(time.Minute)) {
		t.Error("resume not recorded")
	}
	if c := st.Conditions[0]; c.Status != corev1.ConditionFalse || !c.LastTransitionTime.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("condition: %+v", c)
	}
}
