package nodeagent

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// initPod is podWith's pod with init containers named inits before its
// app containers; a name starting with "side" is a sidecar.
func initPod(policy corev1.RestartPolicy, inits []string, apps ...string) *corev1.Pod {
	p := podWith(policy, apps...)
	always := corev1.ContainerRestartPolicyAlways
	for _, n := range inits {
		c := corev1.Container{Name: n, Image: n + ":v1"}
		if strings.HasPrefix(n, "side") {
			c.RestartPolicy = &always
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	}
	return p
}

func TestPodStatusInitContainers(t *testing.T) {
	running := ContainerRecord{Running: true, StartedAt: t0.Add(-time.Minute), ImageID: "sha256:ab"}
	done := ContainerRecord{Last: exited(0, time.Second), ImageID: "sha256:cd"}
	two := []string{"i1", "i2"}
	for _, tc := range []struct {
		name  string
		pod   *corev1.Pod
		recs  map[string]ContainerRecord
		phase corev1.PodPhase
		ready bool
		// states: the init containers' then the app containers'
		// (running, waiting:<reason>, terminated:<reason>)
		states     string
		incomplete string // the Initialized condition's message; "" when True
	}{
		{"nothing created yet", initPod(corev1.RestartPolicyAlways, two, "a"), nil, corev1.PodPending, false,
			"waiting:PodInitializing,waiting:PodInitializing|waiting:PodInitializing", "[i1 i2]"},
		{"first running", initPod(corev1.RestartPolicyAlways, two, "a"), map[string]ContainerRecord{"i1": running}, corev1.PodPending, false,
			"running,waiting:PodInitializing|waiting:PodInitializing", "[i1 i2]"},
		{"second pulling", initPod(corev1.RestartPolicyAlways, two, "a"), map[string]ContainerRecord{"i1": done, "i2": {WaitingReason: ReasonErrImagePull}}, corev1.PodPending, false,
			"terminated:Completed,waiting:ErrImagePull|waiting:PodInitializing", "[i2]"},
		{"second crash-looping", initPod(corev1.RestartPolicyAlways, two, "a"), map[string]ContainerRecord{"i1": done, "i2": {Last: exited(2, time.Second)}}, corev1.PodPending, false,
			"terminated:Completed,waiting:CrashLoopBackOff|waiting:PodInitializing", "[i2]"},
		{"initialized", initPod(corev1.RestartPolicyAlways, two, "a"), map[string]ContainerRecord{"i1": done, "i2": done}, corev1.PodPending, false,
			"terminated:Completed,terminated:Completed|waiting:PodInitializing", ""},
		{"app running", initPod(corev1.RestartPolicyAlways, two, "a"), map[string]ContainerRecord{"i1": done, "i2": done, "a": running}, corev1.PodRunning, true,
			"terminated:Completed,terminated:Completed|running", ""},
		{"app ran, init records gone", initPod(corev1.RestartPolicyAlways, two, "a"), map[string]ContainerRecord{"a": running}, corev1.PodRunning, true,
			"waiting:PodInitializing,waiting:PodInitializing|running", ""},
		{"never: init failed", initPod(corev1.RestartPolicyNever, two, "a"), map[string]ContainerRecord{"i1": {Last: exited(3, time.Second)}}, corev1.PodFailed, false,
			"terminated:Error,waiting:PodInitializing|waiting:PodInitializing", "[i1 i2]"},
		{"on failure: init failed", initPod(corev1.RestartPolicyOnFailure, two, "a"), map[string]ContainerRecord{"i1": {Last: exited(3, time.Second)}}, corev1.PodPending, false,
			"waiting:CrashLoopBackOff,waiting:PodInitializing|waiting:PodInitializing", "[i1 i2]"},
		{"sidecar not started", initPod(corev1.RestartPolicyAlways, []string{"side", "i1"}, "a"), nil, corev1.PodPending, false,
			"waiting:PodInitializing,waiting:PodInitializing|waiting:PodInitializing", "[side i1]"},
		{"sidecar beside the app", initPod(corev1.RestartPolicyAlways, []string{"side", "i1"}, "a"), map[string]ContainerRecord{"side": running, "i1": done, "a": running}, corev1.PodRunning, true,
			"running,terminated:Completed|running", ""},
		{"sidecar restarting beside the app", initPod(corev1.RestartPolicyAlways, []string{"side"}, "a"), map[string]ContainerRecord{"side": {Last: exited(1, time.Second)}, "a": {Running: true, Last: exited(1, time.Second), Restarts: 1}}, corev1.PodRunning, false,
			"waiting:CrashLoopBackOff|running", ""},
		{"job done, sidecar stopped", initPod(corev1.RestartPolicyNever, []string{"side"}, "a"), map[string]ContainerRecord{"side": {Last: exited(137, time.Second)}, "a": done}, corev1.PodSucceeded, false,
			"terminated:Error|terminated:Completed", ""},
	} {
		st := PodStatus(tc.pod, tc.recs, t0.Add(time.Second))
		state := func(list []corev1.ContainerStatus) string {
			var got []string
			for _, cs := range list {
				switch {
				case cs.State.Running != nil:
					got = append(got, "running")
				case cs.State.Waiting != nil:
					got = append(got, "waiting:"+cs.State.Waiting.Reason)
				case cs.State.Terminated != nil:
					got = append(got, "terminated:"+cs.State.Terminated.Reason)
				}
			}
			return strings.Join(got, ",")
		}
		states := state(st.InitContainerStatuses) + "|" + state(st.ContainerStatuses)
		init, ready := st.Conditions[1], st.Conditions[3]
		incomplete := ""
		if init.Status == corev1.ConditionFalse {
			incomplete = strings.TrimPrefix(init.Message, "containers with incomplete status: ")
			if init.Reason != "ContainersNotInitialized" {
				t.Errorf("%s: Initialized False with reason %q", tc.name, init.Reason)
			}
		}
		if st.Phase != tc.phase || (ready.Status == corev1.ConditionTrue) != tc.ready || states != tc.states || incomplete != tc.incomplete {
			t.Errorf("%s: phase %s ready %s states %s incomplete %q; want %s %v %s %q", tc.name, st.Phase, ready.Status, states, incomplete, tc.phase, tc.ready, tc.states, tc.incomplete)
		}
		for i, cs := range st.InitContainerStatuses {
			wantReady := cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0 || isSidecar(&tc.pod.Spec.InitContainers[i]) && cs.State.Running != nil
			if cs.Ready != wantReady || cs.Started == nil || *cs.Started != (cs.State.Running != nil) || cs.Image != cs.Name+":v1" {
				t.Errorf("%s: init container status %+v", tc.name, cs)
			}
		}
	}
}
