package nodeagent

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Back-off between restarts of a crashing container, as the kubelet's: 10s
// doubling to 5m, forgotten once a container has run for 10 minutes.
const (
	backOffInitial = 10 * time.Second
	backOffMax     = 5 * time.Minute
	backOffReset   = 10 * time.Minute
)

// Waiting reasons the agent reports, as Kubernetes names them (and
// InvalidModule for a module that is not valid wasm).
const (
	ReasonContainerCreating = "ContainerCreating"
	ReasonCrashLoopBackOff  = "CrashLoopBackOff"
	ReasonErrImagePull      = "ErrImagePull"
	ReasonInvalidModule     = "InvalidModule"
	// ReasonContainerStatusUnknown ends the run of a container that was
	// running when the agent stopped (its guest stopped with the agent):
	// the kubelet's reason for a container it cannot find any more.
	ReasonContainerStatusUnknown = "ContainerStatusUnknown"
)

// Termination is how a container's run ended.
type Termination struct {
	ExitCode              int32
	Reason, Message       string
	StartedAt, FinishedAt time.Time
}

// ContainerRecord is what the agent knows about one container of a pod.
type ContainerRecord struct {
	Name string
	// Running is set while a run is in progress, since StartedAt.
	Running   bool
	StartedAt time.Time
	// Last is the last finished run (nil: none yet).
	Last *Termination
	// Restarts counts runs started after the first.
	Restarts int32
	// WaitingReason and WaitingMessage explain why a container that is not
	// running has not been (re)started: ErrImagePull, InvalidModule, …
	WaitingReason, WaitingMessage string
	// ImageID is the resolved module (sha256 digest).
	ImageID string

	// backOffReported is the end of the run whose back-off was reported
	// as an Event (once per crash, not per look).
	backOffReported time.Time
}

// Restart decides whether a finished container runs again under policy,
// and not before when.
func Restart(policy corev1.RestartPolicy, rec ContainerRecord) (restart bool, notBefore time.Time) {
	if rec.Running || rec.Last == nil {
		return false, time.Time{}
	}
	switch policy {
	case corev1.RestartPolicyNever:
		return false, time.Time{}
	case corev1.RestartPolicyOnFailure:
		if rec.Last.ExitCode == 0 {
			return false, time.Time{}
		}
	}
	return true, rec.Last.FinishedAt.Add(BackOff(rec))
}

// BackOff is the wait before restarting rec: none for a container that ran
// long enough to be considered healthy or that only stopped because the
// agent did (the kubelet forgets its back-offs when it restarts), else
// 10s × 2^(restarts) up to 5m.
func BackOff(rec ContainerRecord) time.Duration {
	if rec.Last == nil || rec.Last.FinishedAt.Sub(rec.Last.StartedAt) >= backOffReset || rec.Last.Reason == ReasonContainerStatusUnknown {
		return 0
	}
	d := backOffInitial
	for i := int32(0); i < rec.Restarts && d < backOffMax; i++ {
		d *= 2
	}
	return min(d, backOffMax)
}

// PodStatus computes the status of pod from the records of its containers
// (by name; a container without a record has not been created yet), as the
// kubelet does: container states, restart counts, phase and conditions.
func PodStatus(pod *corev1.Pod, recs map[string]ContainerRecord, now time.Time) corev1.PodStatus {
	st := corev1.PodStatus{QOSClass: pod.Status.QOSClass, StartTime: pod.Status.StartTime}
	if st.StartTime == nil {
		t := metav1.NewTime(now)
		st.StartTime = &t
	}
	var running, waiting, succeeded, failed, ready int
	for _, c := range pod.Spec.Containers {
		rec, ok := recs[c.Name]
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: rec.ImageID, RestartCount: rec.Restarts}
		if rec.Last != nil {
			term := &corev1.ContainerStateTerminated{
				ExitCode: rec.Last.ExitCode, Reason: rec.Last.Reason, Message: rec.Last.Message,
				StartedAt: metav1.NewTime(rec.Last.StartedAt), FinishedAt: metav1.NewTime(rec.Last.FinishedAt),
			}
			cs.LastTerminationState.Terminated = term
		}
		restart, notBefore := Restart(pod.Spec.RestartPolicy, rec)
		switch {
		case !ok:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: ReasonContainerCreating}
			waiting++
		case rec.Running:
			t := true
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(rec.StartedAt)}
			cs.Ready, cs.Started = true, &t
			running++
			ready++
		case rec.WaitingReason != "":
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: rec.WaitingReason, Message: rec.WaitingMessage}
			waiting++
		case rec.Last != nil && restart:
			// Between runs: crash-looping while the back-off lasts.
			reason := ReasonContainerCreating
			msg := ""
			if now.Before(notBefore) {
				reason = ReasonCrashLoopBackOff
				msg = "back-off " + notBefore.Sub(rec.Last.FinishedAt).String() + " restarting failed container=" + c.Name + " pod=" + pod.Name + "_" + pod.Namespace + "(" + string(pod.UID) + ")"
			}
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
			waiting++
		case rec.Last != nil:
			// Finished for good.
			cs.State.Terminated = cs.LastTerminationState.Terminated
			cs.LastTerminationState = corev1.ContainerState{}
			if rec.Last.ExitCode == 0 {
				succeeded++
			} else {
				failed++
			}
		default:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: ReasonContainerCreating}
			waiting++
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	n := len(pod.Spec.Containers)
	switch {
	case n > 0 && succeeded == n:
		st.Phase = corev1.PodSucceeded
	case n > 0 && succeeded+failed == n:
		st.Phase = corev1.PodFailed
	case running > 0 || (waiting > 0 && anyStarted(recs)):
		// A container restarting after a crash keeps the pod Running.
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	allReady := n > 0 && ready == n
	condTime := metav1.NewTime(now)
	cond := func(typ corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s, reason = corev1.ConditionTrue, ""
		}
		c := corev1.PodCondition{Type: typ, Status: s, Reason: reason, LastTransitionTime: condTime}
		for _, old := range pod.Status.Conditions {
			if old.Type == typ && old.Status == s {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	notReady := "ContainersNotReady"
	if st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed {
		notReady = "PodCompleted"
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodScheduled, true, ""),
		cond(corev1.PodInitialized, true, ""),
		cond(corev1.ContainersReady, allReady, notReady),
		cond(corev1.PodReady, allReady, notReady),
	}
	return st
}

func anyStarted(recs map[string]ContainerRecord) bool {
	for _, r := range recs {
		if r.Running || r.Last != nil {
			return true
		}
	}
	return false
}
