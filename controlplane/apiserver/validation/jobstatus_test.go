package validation

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// runningJob is a stored Job that started and has two active pods.
func runningJob() *batchv1.Job {
	j := testJob()
	j.Status.StartTime = &metav1.Time{Time: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	j.Status.Active, j.Status.Ready = 2, ptr.To[int32](1)
	return j
}

func cond(typ batchv1.JobConditionType) batchv1.JobCondition {
	return batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue}
}

// finish gives j the conditions and times of a job that completed.
func finish(j *batchv1.Job) {
	j.Status.Active, j.Status.Ready, j.Status.Succeeded = 0, ptr.To[int32](0), 1
	j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet), cond(batchv1.JobComplete)}
	j.Status.CompletionTime = &metav1.Time{Time: j.Status.StartTime.Add(time.Minute)}
}

// TestValidateJobStatusUpdate: kube-apiserver's rules for Job status
// writes, each checked when its fields change.
func TestValidateJobStatusUpdate(t *testing.T) {
	runUpdateCases(t, stored(runningJob), []updateCase[*batchv1.Job]{
		{name: "counts", mutate: func(j *batchv1.Job) { j.Status.Active, j.Status.Succeeded = 1, 1 }},
		{name: "completed as the controller does", mutate: finish},
		{name: "failed as the controller does", mutate: func(j *batchv1.Job) {
			j.Status.Active, j.Status.Ready, j.Status.Failed = 0, ptr.To[int32](0), 7
			j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobFailureTarget), cond(batchv1.JobFailed)}
		}},
		{name: "negative counts", mutate: func(j *batchv1.Job) {
			j.Status.Active, j.Status.Succeeded, j.Status.Failed, j.Status.Ready, j.Status.Terminating = -1, -1, -1, ptr.To[int32](-1), ptr.To[int32](-1)
		}, want: []want{invalid("status.active"), invalid("status.succeeded"), invalid("status.failed"), invalid("status.ready"), invalid("status.terminating")}},
		{name: "more ready than active", mutate: func(j *batchv1.Job) { j.Status.Ready = ptr.To[int32](3) }, want: []want{invalid("status.ready")}},
		{name: "uncounted pods empty or twice", mutate: func(j *batchv1.Job) {
			j.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{Succeeded: []types.UID{"a", ""}, Failed: []types.UID{"a"}}
		}, want: []want{invalid("status.uncountedTerminatedPods.succeeded[1]"), duplicate("status.uncountedTerminatedPods.failed[0]")}},
		{name: "complete and failed", mutate: func(j *batchv1.Job) {
			finish(j)
			j.Status.Conditions = append(j.Status.Conditions, cond(batchv1.JobFailed))
		}, want: []want{invalid("status.conditions"), invalid("status.conditions")}},
		{name: "complete without a completion time", mutate: func(j *batchv1.Job) {
			finish(j)
			j.Status.CompletionTime = nil
		}, want: []want{required("status.completionTime")}},
		{name: "a completion time without complete", mutate: func(j *batchv1.Job) {
			j.Status.CompletionTime = &metav1.Time{Time: j.Status.StartTime.Add(time.Minute)}
		}, want: []want{invalid("status.completionTime")}},
		{name: "completed before it started", mutate: func(j *batchv1.Job) {
			finish(j)
			j.Status.CompletionTime = &metav1.Time{Time: j.Status.StartTime.Add(-time.Minute)}
		}, want: []want{invalid("status.completionTime")}},
		{name: "finished with active pods", mutate: func(j *batchv1.Job) {
			finish(j)
			j.Status.Active, j.Status.Ready = 1, ptr.To[int32](0)
		}, want: []want{invalid("status.active")}},
		{name: "finished with terminating pods", mutate: func(j *batchv1.Job) {
			finish(j)
			j.Status.Terminating = ptr.To[int32](1)
		}, want: []want{invalid("status.terminating")}},
		{name: "finished with uncounted pods", mutate: func(j *batchv1.Job) {
			finish(j)
			j.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{Succeeded: []types.UID{"a"}}
		}, want: []want{invalid("status.uncountedTerminatedPods")}},
		{name: "start time removed", mutate: func(j *batchv1.Job) { j.Status.StartTime = nil }, want: []want{required("status.startTime")}},
		{name: "completed indexes of a non-indexed job", mutate: func(j *batchv1.Job) { j.Status.CompletedIndexes = "0" }, want: []want{invalid("status.completedIndexes")}},
		{name: "failed indexes without a per-index back-off limit", mutate: func(j *batchv1.Job) { j.Status.FailedIndexes = ptr.To("") }, want: []want{invalid("status.failedIndexes")}},
		{name: "a counter going back", mutate: func(j *batchv1.Job) { j.Status.Failed = 0 }},
	})

	// Transitions from a job that finished.
	done := func() *batchv1.Job {
		j := runningJob()
		finish(j)
		j.Status.Failed = 2
		return j
	}
	runUpdateCases(t, stored(done), []updateCase[*batchv1.Job]{
		{name: "complete dropped", mutate: func(j *batchv1.Job) {
			j.Status.Conditions = j.Status.Conditions[:1]
			j.Status.CompletionTime = nil
		}, want: []want{invalid("status.conditions")}},
		{name: "success criteria dropped", mutate: func(j *batchv1.Job) { j.Status.Conditions = j.Status.Conditions[1:] }, want: []want{invalid("status.conditions")}},
		{name: "failed counter decreased", mutate: func(j *batchv1.Job) { j.Status.Failed = 1 }, want: []want{invalid("status.failed")}},
		{name: "succeeded counter decreased", mutate: func(j *batchv1.Job) { j.Status.Succeeded = 0 }, want: []want{invalid("status.succeeded")}},
		{name: "completion time changed", mutate: func(j *batchv1.Job) {
			j.Status.CompletionTime = &metav1.Time{Time: j.Status.CompletionTime.Add(time.Second)}
		}, want: []want{invalid("status.completionTime")}},
	})

	// Indexed, with a per-index back-off limit.
	indexed := func() *batchv1.Job {
		j := runningJob()
		j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
		j.Spec.Completions, j.Spec.Parallelism, j.Spec.BackoffLimitPerIndex = ptr.To[int32](5), ptr.To[int32](2), ptr.To[int32](1)
		j.Spec.BackoffLimit = ptr.To[int32](2147483647)
		j.Status.CompletedIndexes = "0"
		return j
	}
	runUpdateCases(t, stored(indexed), []updateCase[*batchv1.Job]{
		{name: "indexes", mutate: func(j *batchv1.Job) { j.Status.CompletedIndexes, j.Status.FailedIndexes = "0,2-3", ptr.To("1") }},
		{name: "an index beyond completions", mutate: func(j *batchv1.Job) { j.Status.CompletedIndexes = "0,5" }, want: []want{invalid("status.completedIndexes")}},
		{name: "failed indexes out of order", mutate: func(j *batchv1.Job) { j.Status.FailedIndexes = ptr.To("3,1") }, want: []want{invalid("status.failedIndexes")}},
		{name: "an index both completed and failed", mutate: func(j *batchv1.Job) {
			j.Status.CompletedIndexes, j.Status.FailedIndexes = "0-2", ptr.To("2,4")
		}, want: []want{invalid("status.failedIndexes")}},
	})

	// A status kept as it was (a spec write, or one the rules came after)
	// is not checked again.
	stale := runningJob()
	stale.Status.Ready = ptr.To[int32](5)
	Default(stale)
	stamp(stale)
	obj := stale.DeepCopy()
	obj.Labels = map[string]string{"tier": "batch"}
	expectErrors(t, ValidateUpdate(obj, stale))
}
