package nodeagent

import (
	"fmt"
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
	ReasonImagePullBackOff  = "ImagePullBackOff"
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
	// ProbeFailed: the agent stopped the run because its liveness or
	// startup probe failed; as the kubelet, it runs again unless the
	// restart policy is Never, whatever its exit code.
	ProbeFailed bool `json:",omitempty"`
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
	// probe is what the probes of the current run found (not saved: an
	// agent that restarts probes again, as the kubelet does).
	probe probeState

	// WaitingReason and WaitingMessage explain why a container that is not
	// running has not been (re)started: ErrImagePull, InvalidModule, …
	WaitingReason, WaitingMessage string
	// ImageID is the resolved module (sha256 digest).
	ImageID string

	// backOffReported is the end of the run whose back-off was reported
	// as an Event (once per crash, not per look).
	backOffReported time.Time
	// pullFailures counts the failed pulls of the container's image in a
	// row, the last failing at pullFailedAt with pullErr; the next is not
	// before pullRetryAt. Forgotten when the agent restarts, as the
	// kubelet's image back-off.
	pullFailures              int
	pullErr                   string
	pullFailedAt, pullRetryAt time.Time
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
		if rec.Last.ExitCode == 0 && !rec.Last.ProbeFailed {
			return false, time.Time{}
		}
	}
	return true, rec.Last.FinishedAt.Add(BackOff(rec))
}

// BackOff is the wait before restarting rec: none after its first run, for
// a container that ran long enough to be considered healthy or that only
// stopped because the agent did (the kubelet forgets its back-offs when it
// restarts), else 10s × 2^(restarts-1) up to 5m. As the kubelet's
// doBackOff: a first crash is restarted at once, the next after 10s, 20s, …
func BackOff(rec ContainerRecord) time.Duration {
	if rec.Last == nil || rec.Restarts == 0 || rec.Last.FinishedAt.Sub(rec.Last.StartedAt) >= backOffReset || rec.Last.Reason == ReasonContainerStatusUnknown {
		return 0
	}
	d := backOffInitial
	for i := int32(1); i < rec.Restarts && d < backOffMax; i++ {
		d *= 2
	}
	return min(d, backOffMax)
}

// ReasonPodInitializing is the waiting reason of a pod's containers
// before they were first created when the pod has init containers, as
// the kubelet's.
const ReasonPodInitializing = "PodInitializing"

// isSidecar reports whether the init container c is a native sidecar
// (restartPolicy Always): started in order, it runs beside the app
// containers.
func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// initPolicy is the restart policy of pod's init container c, as the
// kubelet's: Always for a sidecar, else Never in a Never pod and
// OnFailure in the others.
func initPolicy(pod *corev1.Pod, c *corev1.Container) corev1.RestartPolicy {
	switch {
	case isSidecar(c):
		return corev1.RestartPolicyAlways
	case pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
		return corev1.RestartPolicyNever
	}
	return corev1.RestartPolicyOnFailure
}

// completed reports whether rec is of a container whose last run exited 0
// and that does not run now.
func completed(rec ContainerRecord) bool {
	return !rec.Running && rec.Last != nil && rec.Last.ExitCode == 0
}

// appStarted reports whether one of pod's app containers has run: the pod
// was initialized, and its init containers do not run again.
func appStarted(pod *corev1.Pod, recs map[string]ContainerRecord) bool {
	for _, c := range pod.Spec.Containers {
		if r := recs[c.Name]; r.Running || r.Last != nil {
			return true
		}
	}
	return false
}

// incompleteInit names pod's init containers that keep it from being
// initialized: regular ones that have not completed, sidecars that do
// not run. None once an app container has run.
func incompleteInit(pod *corev1.Pod, recs map[string]ContainerRecord) []string {
	if appStarted(pod, recs) {
		return nil
	}
	var names []string
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		rec := recs[c.Name]
		if (isSidecar(c) && (!rec.Running || rec.probe.notStarted)) || (!isSidecar(c) && !completed(rec)) {
			names = append(names, c.Name)
		}
	}
	return names
}

// initFailed reports whether a regular init container of pod failed for
// good (restart policy Never): the pod fails.
func initFailed(pod *corev1.Pod, recs map[string]ContainerRecord) bool {
	if pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		return false
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if rec := recs[c.Name]; !isSidecar(c) && !rec.Running && rec.Last != nil && rec.Last.ExitCode != 0 {
			return true
		}
	}
	return false
}

// appsDone reports whether all of pod's app containers have finished for
// good: its sidecars stop, and are not restarted.
func appsDone(pod *corev1.Pod, recs map[string]ContainerRecord) bool {
	for _, c := range pod.Spec.Containers {
		rec := recs[c.Name]
		if restart, _ := Restart(pod.Spec.RestartPolicy, rec); rec.Running || rec.Last == nil || restart {
			return false
		}
	}
	return len(pod.Spec.Containers) > 0
}

// containerStatus is the status of container c under restart policy from
// its record (ok: it has one), and its state: running, waiting, or
// terminated for good. defaultWaiting is the reason of a container
// not created yet.
func containerStatus(pod *corev1.Pod, c *corev1.Container, rec ContainerRecord, ok bool, policy corev1.RestartPolicy, defaultWaiting string, now time.Time) corev1.ContainerStatus {
	started := ok && rec.Running && !rec.probe.notStarted
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: rec.ImageID, RestartCount: rec.Restarts, Started: &started}
	if rec.Last != nil {
		term := &corev1.ContainerStateTerminated{
			ExitCode: rec.Last.ExitCode, Reason: rec.Last.Reason, Message: rec.Last.Message,
			StartedAt: metav1.NewTime(rec.Last.StartedAt), FinishedAt: metav1.NewTime(rec.Last.FinishedAt),
		}
		cs.LastTerminationState.Terminated = term
	}
	restart, notBefore := Restart(policy, rec)
	switch {
	case !ok:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: defaultWaiting}
	case rec.Running:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(rec.StartedAt)}
		cs.Ready = started && !rec.probe.notReady
	case rec.WaitingReason != "":
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: rec.WaitingReason, Message: rec.WaitingMessage}
	case rec.Last != nil && restart:
		// Between runs: crash-looping while the back-off lasts.
		reason := ReasonContainerCreating
		msg := ""
		if now.Before(notBefore) {
			reason = ReasonCrashLoopBackOff
			msg = "back-off " + notBefore.Sub(rec.Last.FinishedAt).String() + " restarting failed container=" + c.Name + " pod=" + pod.Name + "_" + pod.Namespace + "(" + string(pod.UID) + ")"
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
	case rec.Last != nil:
		// Finished for good.
		cs.State.Terminated = cs.LastTerminationState.Terminated
		cs.LastTerminationState = corev1.ContainerState{}
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: defaultWaiting}
	}
	return cs
}

// PodStatus computes the status of pod from the records of its containers
// (by name; a container without a record has not been created yet), as the
// kubelet does: init and app container states, restart counts, phase and
// conditions. Init containers run in order, each to completion, before the
// app containers (sidecars keep running beside them); a regular one that
// fails in a Never pod fails the pod.
func PodStatus(pod *corev1.Pod, recs map[string]ContainerRecord, now time.Time) corev1.PodStatus {
	st := corev1.PodStatus{QOSClass: pod.Status.QOSClass, StartTime: pod.Status.StartTime}
	if st.StartTime == nil {
		t := metav1.NewTime(now)
		st.StartTime = &t
	}
	defaultWaiting := ReasonContainerCreating
	if len(pod.Spec.InitContainers) > 0 {
		defaultWaiting = ReasonPodInitializing
	}
	sidecarsReady, sidecarsRunning := true, false
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		rec, ok := recs[c.Name]
		policy := initPolicy(pod, c)
		if isSidecar(c) && appsDone(pod, recs) {
			policy = corev1.RestartPolicyNever // stopped with the pod
		}
		cs := containerStatus(pod, c, rec, ok, policy, defaultWaiting, now)
		if !isSidecar(c) {
			// A regular init container is ready once it completed.
			cs.Ready = cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
		} else {
			sidecarsReady = sidecarsReady && cs.Ready
			sidecarsRunning = sidecarsRunning || cs.State.Running != nil
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	var running, waiting, succeeded, failed, ready int
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		rec, ok := recs[c.Name]
		cs := containerStatus(pod, c, rec, ok, pod.Spec.RestartPolicy, defaultWaiting, now)
		switch {
		case cs.State.Running != nil:
			running++
			if cs.Ready {
				ready++
			}
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			succeeded++
		case cs.State.Terminated != nil:
			failed++
		default:
			waiting++
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	incomplete := incompleteInit(pod, recs)
	n := len(pod.Spec.Containers)
	switch {
	case initFailed(pod, recs):
		st.Phase = corev1.PodFailed
	case len(incomplete) > 0:
		st.Phase = corev1.PodPending
	case n > 0 && succeeded+failed == n && sidecarsRunning:
		st.Phase = corev1.PodRunning // until its sidecars have stopped
	case n > 0 && succeeded == n:
		st.Phase = corev1.PodSucceeded
	case n > 0 && succeeded+failed == n:
		st.Phase = corev1.PodFailed
	case running > 0 || (waiting > 0 && appStarted(pod, recs)):
		// A container restarting after a crash keeps the pod Running.
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}
	allReady := n > 0 && ready == n && sidecarsReady
	condTime := metav1.NewTime(now)
	cond := func(typ corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s, reason, msg = corev1.ConditionTrue, "", ""
		}
		c := corev1.PodCondition{Type: typ, Status: s, Reason: reason, Message: msg, LastTransitionTime: condTime}
		for _, old := range pod.Status.Conditions {
			if old.Type == typ && old.Status == s {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	// Why the containers are not ready, as the kubelet's
	// GenerateContainersReadyCondition: the pod ended, or which are not.
	notReady, unreadyMsg := "ContainersNotReady", ""
	switch st.Phase {
	case corev1.PodSucceeded:
		notReady = "PodCompleted"
	case corev1.PodFailed:
		notReady = "PodFailed"
	default:
		var unready []string
		for i, cs := range st.InitContainerStatuses {
			if isSidecar(&pod.Spec.InitContainers[i]) && !cs.Ready {
				unready = append(unready, cs.Name)
			}
		}
		for _, cs := range st.ContainerStatuses {
			if !cs.Ready {
				unready = append(unready, cs.Name)
			}
		}
		unreadyMsg = fmt.Sprintf("containers with unready status: %s", unready)
	}
	// The kubelet's conditions in its order. PodReadyToStartContainers
	// says the pod's sandbox is up: here, that the agent runs the pod,
	// until it ended (the kubelet then removes the sandbox).
	ended := st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, !ended, "", ""),
		cond(corev1.PodInitialized, len(incomplete) == 0, "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: %s", incomplete)),
		cond(corev1.PodReady, allReady, notReady, unreadyMsg),
		cond(corev1.ContainersReady, allReady, notReady, unreadyMsg),
		cond(corev1.PodScheduled, true, "", ""),
	}
	return st
}
