package job

import (
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// This file holds the Job controller's decisions: pure functions of the
// Job, its pods and the time, mirroring k8s.io/kubernetes/pkg/controller/job.

const (
	// DefaultPodFailureBackOff is the first delay before replacing a failed
	// pod; it doubles per failure since the last success up to
	// MaxPodFailureBackOff.
	DefaultPodFailureBackOff = 10 * time.Second
	// MaxPodFailureBackOff caps the delay.
	MaxPodFailureBackOff = 6 * time.Minute
	// maxUncountedPods bounds status.uncountedTerminatedPods per write.
	maxUncountedPods = 500
	// maxPodCreateDeletePerSync bounds the creates or deletes of one sync.
	maxPodCreateDeletePerSync = 500
)

// Condition messages, as Kubernetes writes them.
const (
	msgBackoffLimitExceeded = "Job has reached the specified backoff limit"
	msgDeadlineExceeded     = "Job was active longer than specified deadline"
	msgCompletionsReached   = "Reached expected number of succeeded pods"

	msgMaxFailedIndexesExceeded = "Job has exceeded the specified maximal number of failed indexes"
	msgFailedIndexes            = "Job has failed indexes"
)

// isFinished reports whether job is Complete or Failed.
func isFinished(job *batchv1.Job) bool { return controller.FinishedCondition(job) != nil }

func findCondition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if job.Status.Conditions[i].Type == t {
			return &job.Status.Conditions[i]
		}
	}
	return nil
}

// managedElsewhere: spec.managedBy gives the job to another controller.
func managedElsewhere(job *batchv1.Job) bool {
	return job.Spec.ManagedBy != nil && *job.Spec.ManagedBy != batchv1.JobControllerName
}

func suspended(job *batchv1.Job) bool { return job.Spec.Suspend != nil && *job.Spec.Suspend }

// onlyReplaceFailedPods: a terminating pod is replaced only once it failed.
func onlyReplaceFailedPods(job *batchv1.Job) bool {
	return (job.Spec.PodReplacementPolicy != nil && *job.Spec.PodReplacementPolicy == batchv1.Failed) || job.Spec.PodFailurePolicy != nil
}

func hasTrackingFinalizer(p *corev1.Pod) bool {
	for _, f := range p.Finalizers {
		if f == batchv1.JobTrackingFinalizer {
			return true
		}
	}
	return false
}

func isTerminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// isPodFailed: failed, or (unless only failed pods are replaced) deleted
// before it succeeded.
func isPodFailed(p *corev1.Pod, job *batchv1.Job) bool {
	if p.Status.Phase == corev1.PodFailed {
		return true
	}
	if onlyReplaceFailedPods(job) {
		return false
	}
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded
}

func isActive(p *corev1.Pod) bool { return !isTerminal(p) && p.DeletionTimestamp == nil }

func isPodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// uncounted is status.uncountedTerminatedPods as sets.
type uncounted struct{ succeeded, failed sets.Set[types.UID] }

func newUncounted(job *batchv1.Job) uncounted {
	u := uncounted{succeeded: sets.New[types.UID](), failed: sets.New[types.UID]()}
	if p := job.Status.UncountedTerminatedPods; p != nil {
		u.succeeded.Insert(p.Succeeded...)
		u.failed.Insert(p.Failed...)
	}
	return u
}

// cleanUncounted moves the uncounted pods that no longer carry the
// tracking finalizer (not in withFinalizer) into the succeeded and failed
// counters; it reports whether the status changed.
func cleanUncounted(st *batchv1.JobStatus, withFinalizer sets.Set[types.UID]) bool {
	if st.UncountedTerminatedPods == nil {
		return false
	}
	changed := false
	keep := func(uids []types.UID, counter *int32) []types.UID {
		var out []types.UID
		for _, uid := range uids {
			if withFinalizer.Has(uid) {
				out = append(out, uid)
				continue
			}
			*counter++
			changed = true
		}
		return out
	}
	st.UncountedTerminatedPods.Succeeded = keep(st.UncountedTerminatedPods.Succeeded, &st.Succeeded)
	st.UncountedTerminatedPods.Failed = keep(st.UncountedTerminatedPods.Failed, &st.Failed)
	return changed
}

// pastBackoffLimitOnFailure: for restartPolicy OnFailure, container restarts
// of running and pending pods count as failures.
func pastBackoffLimitOnFailure(job *batchv1.Job, pods []*corev1.Pod) bool {
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var restarts int32
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending {
			continue
		}
		for _, s := range p.Status.InitContainerStatuses {
			restarts += s.RestartCount
		}
		for _, s := range p.Status.ContainerStatuses {
			restarts += s.RestartCount
		}
	}
	if *job.Spec.BackoffLimit == 0 {
		return restarts > 0
	}
	return restarts >= *job.Spec.BackoffLimit
}

// pastActiveDeadline: the job has been active (not suspended) for
// activeDeadlineSeconds.
func pastActiveDeadline(job *batchv1.Job, now time.Time) bool {
	if job.Spec.ActiveDeadlineSeconds == nil || job.Status.StartTime == nil || suspended(job) {
		return false
	}
	return now.Sub(job.Status.StartTime.Time) >= time.Duration(*job.Spec.ActiveDeadlineSeconds)*time.Second
}

// wantActive is how many pods should run (manageJob).
func wantActive(job *batchv1.Job, active, succeeded int32) int32 {
	parallelism := int32(1)
	if job.Spec.Parallelism != nil {
		parallelism = *job.Spec.Parallelism
	}
	if job.Spec.Completions == nil {
		// Work queue: once a pod succeeded, let the others finish.
		if succeeded > 0 {
			return active
		}
		return parallelism
	}
	return max(min(*job.Spec.Completions-succeeded, parallelism), 0)
}

// isComplete: all completions succeeded (work queue: one succeeded and
// none runs any more) and no pod is active.
func isComplete(job *batchv1.Job, active, succeeded int32) bool {
	if job.Spec.Completions == nil {
		return succeeded > 0 && active == 0
	}
	return succeeded >= *job.Spec.Completions && active == 0
}

// activePodsForRemoval orders pods as Kubernetes picks them for deletion
// (controller.ActivePods): unbound, then pending, then not ready, then the
// most recently ready or created first.
func activePodsForRemoval(pods []*corev1.Pod, n int) []*corev1.Pod {
	out := append([]*corev1.Pod(nil), pods...)
	rank := func(p *corev1.Pod) int {
		switch p.Status.Phase {
		case corev1.PodPending:
			return 0
		case corev1.PodUnknown:
			return 1
		case corev1.PodRunning:
			return 2
		}
		return 3
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
			return a.Spec.NodeName == ""
		}
		if rank(a) != rank(b) {
			return rank(a) < rank(b)
		}
		if isPodReady(a) != isPodReady(b) {
			return !isPodReady(a)
		}
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	})
	if n > len(out) {
		n = len(out)
	}
	return out[:n]
}

// finishedTime is when a pod finished: its last container's finish, else
// when it stopped being ready, else its deletion, else its creation.
func finishedTime(p *corev1.Pod) time.Time {
	var last time.Time
	for _, s := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if t := s.State.Terminated; t != nil && t.FinishedAt.After(last) {
			last = t.FinishedAt.Time
		}
	}
	if !last.IsZero() {
		return last
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	if p.DeletionTimestamp != nil {
		return p.DeletionTimestamp.Time
	}
	return p.CreationTimestamp.Time
}

// backoffRecord counts the failures since the job's last success.
type backoffRecord struct {
	failuresAfterLastSuccess int32
	lastFailureTime          *time.Time
}

// next folds newly finished pods into r (newBackoffRecord).
func (r backoffRecord) next(newSucceeded, newFailed []*corev1.Pod) backoffRecord {
	byTime := func(ps []*corev1.Pod) []*corev1.Pod {
		out := append([]*corev1.Pod(nil), ps...)
		sort.SliceStable(out, func(i, j int) bool { return finishedTime(out[i]).Before(finishedTime(out[j])) })
		return out
	}
	s, f := byTime(newSucceeded), byTime(newFailed)
	if len(s) == 0 {
		if len(f) == 0 {
			return r
		}
		t := finishedTime(f[len(f)-1])
		return backoffRecord{failuresAfterLastSuccess: r.failuresAfterLastSuccess + int32(len(f)), lastFailureTime: &t}
	}
	out := backoffRecord{}
	lastSuccess := finishedTime(s[len(s)-1])
	for i := len(f) - 1; i >= 0; i-- {
		t := finishedTime(f[i])
		if !t.After(lastSuccess) {
			break
		}
		if out.lastFailureTime == nil {
			out.lastFailureTime = &t
		}
		out.failuresAfterLastSuccess++
	}
	return out
}

// remaining is how long to wait before creating pods again.
func (r backoffRecord) remaining(now time.Time) time.Duration {
	if r.failuresAfterLastSuccess == 0 || r.lastFailureTime == nil {
		return 0
	}
	d := DefaultPodFailureBackOff
	for i := int32(1); i < r.failuresAfterLastSuccess; i++ {
		d *= 2
		if d >= MaxPodFailureBackOff {
			d = MaxPodFailureBackOff
			break
		}
	}
	elapsed := now.Sub(*r.lastFailureTime)
	if d < elapsed {
		return 0
	}
	return d - elapsed
}

// setCondition sets a condition's status, reason and message, touching
// its times only when it changes; it reports whether anything changed.
func setCondition(st *batchv1.JobStatus, t batchv1.JobConditionType, status corev1.ConditionStatus, reason, msg string, now time.Time) bool {
	ts := metav1.NewTime(now)
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status == status && c.Reason == reason && c.Message == msg {
			return false
		}
		if c.Status != status {
			c.LastTransitionTime = ts
		}
		c.Status, c.Reason, c.Message, c.LastProbeTime = status, reason, msg, ts
		return true
	}
	if status == corev1.ConditionFalse {
		return false // an absent condition is already not true
	}
	st.Conditions = append(st.Conditions, batchv1.JobCondition{Type: t, Status: status, Reason: reason, Message: msg, LastProbeTime: ts, LastTransitionTime: ts})
	return true
}

// finishedSuccessfully: the job is heading to (or at) Complete.
func finishedSuccessfully(c *batchv1.JobCondition) bool {
	return c.Type == batchv1.JobSuccessCriteriaMet || c.Type == batchv1.JobComplete
}
