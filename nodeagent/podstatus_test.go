package nodeagent

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

func exited(code int32, ranFor time.Duration) *Termination {
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	return &Termination{ExitCode: code, Reason: reason, StartedAt: t0.Add(-ranFor), FinishedAt: t0}
}

func lostWithAgent(ranFor time.Duration) *Termination {
	return &Termination{ExitCode: 137, Reason: ReasonContainerStatusUnknown, StartedAt: t0.Add(-ranFor), FinishedAt: t0}
}

func TestBackOffAndRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policy   corev1.RestartPolicy
		rec      ContainerRecord
		restart  bool
		notAfter time.Duration // notBefore - t0
	}{
		{"running", corev1.RestartPolicyAlways, ContainerRecord{Running: true}, false, 0},
		{"never started", corev1.RestartPolicyAlways, ContainerRecord{}, false, 0},
		{"always, first crash: at once", corev1.RestartPolicyAlways, ContainerRecord{Last: exited(1, time.Second)}, true, 0},
		{"always, second crash", corev1.RestartPolicyAlways, ContainerRecord{Last: exited(1, time.Second), Restarts: 1}, true, 10 * time.Second},
		{"always, exit 0 restarts too", corev1.RestartPolicyAlways, ContainerRecord{Last: exited(0, time.Second), Restarts: 1}, true, 10 * time.Second},
		{"always, third restart", corev1.RestartPolicyAlways, ContainerRecord{Last: exited(1, time.Second), Restarts: 3}, true, 40 * time.Second},
		{"always, capped at 5m", corev1.RestartPolicyAlways, ContainerRecord{Last: exited(1, time.Second), Restarts: 20}, true, 5 * time.Minute},
		{"always, ran 10m: no back-off", corev1.RestartPolicyAlways, ContainerRecord{Last: exited(1, 11*time.Minute), Restarts: 20}, true, 0},
		{"on failure, exit 0", corev1.RestartPolicyOnFailure, ContainerRecord{Last: exited(0, time.Second)}, false, 0},
		{"on failure, exit 2", corev1.RestartPolicyOnFailure, ContainerRecord{Last: exited(2, time.Second), Restarts: 1}, true, 10 * time.Second},
		{"never", corev1.RestartPolicyNever, ContainerRecord{Last: exited(2, time.Second)}, false, 0},
		{"on failure, exit 0 after a failed probe", corev1.RestartPolicyOnFailure, ContainerRecord{Last: probeFailed(exited(0, time.Second))}, true, 0},
		{"never, after a failed probe", corev1.RestartPolicyNever, ContainerRecord{Last: probeFailed(exited(0, time.Second))}, false, 0},
		{"stopped with the agent: no back-off", corev1.RestartPolicyAlways, ContainerRecord{Last: lostWithAgent(time.Second), Restarts: 4}, true, 0},
		{"stopped with the agent, on failure", corev1.RestartPolicyOnFailure, ContainerRecord{Last: lostWithAgent(time.Second)}, true, 0},
		{"stopped with the agent, never", corev1.RestartPolicyNever, ContainerRecord{Last: lostWithAgent(time.Second)}, false, 0},
	} {
		restart, notBefore := Restart(tc.policy, tc.rec)
		if restart != tc.restart || (restart && notBefore.Sub(t0) != tc.notAfter) {
			t.Errorf("%s: restart %v at +%v, want %v at +%v", tc.name, restart, notBefore.Sub(t0), tc.restart, tc.notAfter)
		}
	}
}

func probeFailed(t *Termination) *Termination {
	t.ProbeFailed = true
	return t
}

// podCondition returns st's condition of type typ (the zero condition
// when there is none).
func podCondition(st corev1.PodStatus, typ corev1.PodConditionType) corev1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return corev1.PodCondition{}
}

func podWith(policy corev1.RestartPolicy, names ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u1"}, Spec: corev1.PodSpec{RestartPolicy: policy}}
	for _, n := range names {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n, Image: n + ":v1"})
	}
	return p
}

func TestPodStatus(t *testing.T) {
	running := ContainerRecord{Running: true, StartedAt: t0.Add(-time.Minute), ImageID: "sha256:ab"}
	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		recs    map[string]ContainerRecord
		now     time.Time
		phase   corev1.PodPhase
		ready   bool
		reasons string // each container's state: running, waiting:<reason>, terminated:<reason>
	}{
		{"nothing created yet", podWith(corev1.RestartPolicyAlways, "a"), nil, t0, corev1.PodPending, false, "waiting:ContainerCreating"},
		{"module missing", podWith(corev1.RestartPolicyAlways, "a"), map[string]ContainerRecord{"a": {WaitingReason: ReasonErrImagePull, WaitingMessage: "no module hello:v1"}}, t0, corev1.PodPending, false, "waiting:ErrImagePull"},
		{"running", podWith(corev1.RestartPolicyAlways, "a"), map[string]ContainerRecord{"a": running}, t0, corev1.PodRunning, true, "running"},
		{"one of two running", podWith(corev1.RestartPolicyAlways, "a", "b"), map[string]ContainerRecord{"a": running}, t0, corev1.PodRunning, false, "running,waiting:ContainerCreating"},
		{"crash loop", podWith(corev1.RestartPolicyAlways, "a"), map[string]ContainerRecord{"a": {Last: exited(1, time.Second), Restarts: 2}}, t0.Add(time.Second), corev1.PodRunning, false, "waiting:CrashLoopBackOff"},
		{"back-off over", podWith(corev1.RestartPolicyAlways, "a"), map[string]ContainerRecord{"a": {Last: exited(1, time.Second), Restarts: 1}}, t0.Add(time.Minute), corev1.PodRunning, false, "waiting:ContainerCreating"},
		{"job done", podWith(corev1.RestartPolicyOnFailure, "a"), map[string]ContainerRecord{"a": {Last: exited(0, time.Second)}}, t0, corev1.PodSucceeded, false, "terminated:Completed"},
		{"job retrying", podWith(corev1.RestartPolicyOnFailure, "a"), map[string]ContainerRecord{"a": {Last: exited(3, time.Second), Restarts: 1}}, t0, corev1.PodRunning, false, "waiting:CrashLoopBackOff"},
		{"never, failed", podWith(corev1.RestartPolicyNever, "a", "b"), map[string]ContainerRecord{"a": {Last: exited(0, time.Second)}, "b": {Last: exited(137, time.Second)}}, t0, corev1.PodFailed, false, "terminated:Completed,terminated:Error"},
		{"never, one still running", podWith(corev1.RestartPolicyNever, "a", "b"), map[string]ContainerRecord{"a": {Last: exited(1, time.Second)}, "b": running}, t0, corev1.PodRunning, false, "terminated:Error,running"},
	} {
		st := PodStatus(tc.pod, tc.recs, tc.now)
		var got []string
		for _, cs := range st.ContainerStatuses {
			switch {
			case cs.State.Running != nil:
				got = append(got, "running")
			case cs.State.Waiting != nil:
				got = append(got, "waiting:"+cs.State.Waiting.Reason)
			case cs.State.Terminated != nil:
				got = append(got, "terminated:"+cs.State.Terminated.Reason)
			}
		}
		ready := podCondition(st, corev1.PodReady).Status == corev1.ConditionTrue
		if st.Phase != tc.phase || ready != tc.ready || strings.Join(got, ",") != tc.reasons {
			t.Errorf("%s: phase %s ready %v states %s; want %s %v %s", tc.name, st.Phase, ready, strings.Join(got, ","), tc.phase, tc.ready, tc.reasons)
		}
	}
}

func TestPodStatusKeepsTransitionTimes(t *testing.T) {
	pod := podWith(corev1.RestartPolicyAlways, "a")
	running := map[string]ContainerRecord{"a": {Running: true, StartedAt: t0}}
	pod.Status = PodStatus(pod, running, t0)
	later := PodStatus(pod, running, t0.Add(time.Hour))
	for i, c := range later.Conditions {
		if !c.LastTransitionTime.Equal(&pod.Status.Conditions[i].LastTransitionTime) {
			t.Errorf("%s moved its transition time without a transition", c.Type)
		}
	}
	if !later.StartTime.Equal(pod.Status.StartTime) {
		t.Error("start time moved")
	}
	crashed := PodStatus(pod, map[string]ContainerRecord{"a": {Last: exited(1, time.Second), Restarts: 1}}, t0.Add(2*time.Hour))
	if crashed.ContainerStatuses[0].RestartCount != 1 || crashed.ContainerStatuses[0].LastTerminationState.Terminated == nil {
		t.Errorf("crash: %+v", crashed.ContainerStatuses[0])
	}
	was, now := podCondition(pod.Status, corev1.PodReady).LastTransitionTime, podCondition(crashed, corev1.PodReady).LastTransitionTime
	if now.Equal(&was) {
		t.Error("Ready went false without a new transition time")
	}
}

// TestPodStatusReadyConditions: ContainersReady and Ready say why they are
// False as the kubelet's: the containers not ready, or the pod's end.
func TestPodStatusReadyConditions(t *testing.T) {
	for _, tc := range []struct {
		name            string
		policy          corev1.RestartPolicy
		recs            map[string]ContainerRecord
		reason, message string
	}{
		{"one not ready", corev1.RestartPolicyAlways, map[string]ContainerRecord{"a": {Running: true}}, "ContainersNotReady", "containers with unready status: [b]"},
		{"succeeded", corev1.RestartPolicyNever, map[string]ContainerRecord{"a": {Last: exited(0, time.Second)}, "b": {Last: exited(0, time.Second)}}, "PodCompleted", ""},
		{"failed", corev1.RestartPolicyNever, map[string]ContainerRecord{"a": {Last: exited(0, time.Second)}, "b": {Last: exited(1, time.Second)}}, "PodFailed", ""},
	} {
		st := PodStatus(podWith(tc.policy, "a", "b"), tc.recs, t0)
		for _, c := range st.Conditions {
			if (c.Type == corev1.ContainersReady || c.Type == corev1.PodReady) && (c.Status != corev1.ConditionFalse || c.Reason != tc.reason || c.Message != tc.message) {
				t.Errorf("%s: %s %s %q %q, want False %q %q", tc.name, c.Type, c.Status, c.Reason, c.Message, tc.reason, tc.message)
			}
		}
	}
}

// TestPodStatusConditionsAsTheKubelet: the kubelet's conditions, in its
// order; PodReadyToStartContainers is True while the agent runs the pod
// and False once it ended.
func TestPodStatusConditionsAsTheKubelet(t *testing.T) {
	for _, tc := range []struct {
		name    string
		policy  corev1.RestartPolicy
		rec     ContainerRecord
		toStart corev1.ConditionStatus
	}{
		{"running", corev1.RestartPolicyAlways, ContainerRecord{Running: true, StartedAt: t0}, corev1.ConditionTrue},
		{"not started yet", corev1.RestartPolicyAlways, ContainerRecord{}, corev1.ConditionTrue},
		{"succeeded", corev1.RestartPolicyNever, ContainerRecord{Last: exited(0, time.Second)}, corev1.ConditionFalse},
		{"failed", corev1.RestartPolicyNever, ContainerRecord{Last: exited(1, time.Second)}, corev1.ConditionFalse},
	} {
		pod := podWith(tc.policy, "a")
		st := PodStatus(pod, map[string]ContainerRecord{"a": tc.rec}, t0)
		var types []string
		for _, c := range st.Conditions {
			types = append(types, string(c.Type))
		}
		if want := "PodReadyToStartContainers Initialized Ready ContainersReady PodScheduled"; strings.Join(types, " ") != want {
			t.Errorf("%s: conditions %v, want %s", tc.name, types, want)
		}
		if c := podCondition(st, corev1.PodReadyToStartContainers); c.Status != tc.toStart || c.Reason != "" {
			t.Errorf("%s (phase %s): PodReadyToStartContainers %s %q, want %s", tc.name, st.Phase, c.Status, c.Reason, tc.toStart)
		}
	}
}
