package job

import (
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

func TestMatchPodFailurePolicy(t *testing.T) {
	policy := &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}},
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{ContainerName: new("main"), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		{Action: batchv1.PodFailurePolicyActionCount, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpNotIn, Values: []int32{1, 2}}},
	}}
	pod := func(conds []corev1.PodConditionType, codes ...any) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodFailed}}
		for i := 0; i < len(codes); i += 2 {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: codes[i].(string),
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(codes[i+1].(int))}}})
		}
		for _, c := range conds {
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue})
		}
		return p
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want policyMatch
	}{
		{name: "disruption ignored", pod: pod([]corev1.PodConditionType{corev1.DisruptionTarget}, "main", 42), want: policyMatch{action: batchv1.PodFailurePolicyActionIgnore}},
		{name: "fail job", pod: pod(nil, "side", 0, "main", 42), want: policyMatch{action: batchv1.PodFailurePolicyActionFailJob, count: true,
			failJob: "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"}},
		{name: "other container's 42 counts", pod: pod(nil, "side", 42), want: policyMatch{action: batchv1.PodFailurePolicyActionCount, count: true}},
		{name: "NotIn excludes", pod: pod(nil, "main", 2), want: policyMatch{count: true}},
		{name: "exit 0 never matches NotIn", pod: pod(nil, "main", 0), want: policyMatch{count: true}},
	}
	for _, tt := range tests {
		if got := matchPodFailurePolicy(policy, tt.pod); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
	cond := &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionFailJob, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}},
	}}
	if got := matchPodFailurePolicy(cond, pod([]corev1.PodConditionType{corev1.DisruptionTarget})).failJob; got != "Pod ns/p has condition DisruptionTarget matching FailJob rule at index 0" {
		t.Errorf("condition message %q", got)
	}
}

func exitCodeRule(action batchv1.PodFailurePolicyAction, op batchv1.PodFailurePolicyOnExitCodesOperator, codes ...int32) batchv1.PodFailurePolicyRule {
	return batchv1.PodFailurePolicyRule{Action: action, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: op, Values: codes}}
}

func TestPodFailurePolicy(t *testing.T) {
	var tries attempts
	_, cs := startCluster(t, func(p *corev1.Pod) agentPlan {
		plan := agentPlan{ReadyAfter: 20 * time.Millisecond, Finish: corev1.PodSucceeded, FinishAfter: 100 * time.Millisecond}
		first := tries.next(p) == 0 // per job and index
		switch p.Labels[batchv1.JobNameLabel] {
		case "failjob":
			plan.Finish, plan.ExitCodes = corev1.PodFailed, map[string]int32{"side": 5, "work": 42}
		case "ignore":
			if first {
				plan.Finish, plan.Conditions = corev1.PodFailed, []corev1.PodConditionType{corev1.DisruptionTarget}
			}
		case "evicted":
			if first {
				plan.Finish = "" // runs until evicted
			}
		case "count":
			if first {
				plan.Finish, plan.ExitCode = corev1.PodFailed, 3
			}
		case "failindex":
			if p.Annotations[batchv1.JobCompletionIndexAnnotation] == "0" {
				plan.Finish, plan.ExitCode = corev1.PodFailed, 9
			}
		}
		return plan
	})
	startController(t, cs)

	// FailJob: the job fails at the first matching failure, whatever
	// backoffLimit allows; rule 0 is for another exit code.
	job := newJob("failjob", nil, nil)
	job.Spec.Template.Spec.Containers = append(job.Spec.Template.Spec.Containers, corev1.Container{Name: "side", Image: "side:1"})
	job.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		exitCodeRule(batchv1.PodFailurePolicyActionIgnore, batchv1.PodFailurePolicyOnExitCodesOpIn, 5),
		exitCodeRule(batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyOnExitCodesOpIn, 42),
	}}
	job.Spec.PodFailurePolicy.Rules[0].OnExitCodes.ContainerName = new("work")
	createJob(t, cs, job)

	// Ignore: a disrupted pod is replaced without counting, so backoffLimit
	// 0 is not exceeded.
	job = newJob("ignore", nil, nil)
	job.Spec.BackoffLimit = new(int32(0))
	job.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
		Action:          batchv1.PodFailurePolicyActionIgnore,
		OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}},
	}}}
	createJob(t, cs, job)

	// The same for a pod evicted through the API (kubectl drain), which
	// gives it the DisruptionTarget condition.
	job = newJob("evicted", nil, nil)
	job.Spec.BackoffLimit = new(int32(0))
	job.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
		Action:          batchv1.PodFailurePolicyActionIgnore,
		OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget}},
	}}}
	createJob(t, cs, job)

	// Count: exit code 3 matches Count before the FailJob rule for
	// everything else; the failure counts (backoffLimit 1 allows it).
	job = newJob("count", nil, nil)
	job.Spec.BackoffLimit = new(int32(1))
	job.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		exitCodeRule(batchv1.PodFailurePolicyActionCount, batchv1.PodFailurePolicyOnExitCodesOpIn, 3),
		exitCodeRule(batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyOnExitCodesOpNotIn, 3),
	}}
	createJob(t, cs, job)

	// FailIndex: index 0 fails at once although backoffLimitPerIndex
	// allows retries; index 1 succeeds.
	job = indexedJob("failindex", 2, 2)
	job.Spec.BackoffLimitPerIndex = new(int32(3))
	job.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		exitCodeRule(batchv1.PodFailurePolicyActionFailIndex, batchv1.PodFailurePolicyOnExitCodesOpIn, 9),
	}}
	createJob(t, cs, job)

	// The API server takes a pod failure policy only with restartPolicy Never.
	bad := newJob("onfailure", nil, nil)
	bad.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	bad.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		exitCodeRule(batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyOnExitCodesOpIn, 1),
	}}
	if _, err := cs.BatchV1().Jobs(ns).Create(t.Context(), bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("job with restartPolicy OnFailure and a pod failure policy: %v, want Invalid", err)
	}

	var victim string
	testenv.Poll(t, "evicted's pod ready", func() (bool, string) {
		pods := jobPods(t, cs, "evicted")
		if len(pods) == 1 && isPodReady(&pods[0]) {
			victim = pods[0].Name
			return true, ""
		}
		return false, fmt.Sprintf("%d pods", len(pods))
	})
	if err := cs.PolicyV1().Evictions(ns).Evict(t.Context(), &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: victim, Namespace: ns}}); err != nil {
		t.Fatal(err)
	}

	j := waitCondition(t, cs, "failjob", batchv1.JobFailed)
	pods := jobPods(t, cs, "failjob")
	if len(pods) != 1 {
		t.Fatalf("%d pods, want 1", len(pods))
	}
	want := fmt.Sprintf("Container work for pod %s/%s failed with exit code 42 matching FailJob rule at index 1", ns, pods[0].Name)
	for _, typ := range []batchv1.JobConditionType{batchv1.JobFailureTarget, batchv1.JobFailed} {
		if c := condition(j, typ); c == nil || c.Reason != batchv1.JobReasonPodFailurePolicy || c.Message != want {
			t.Errorf("%s = %+v, want reason PodFailurePolicy, message %q", typ, c, want)
		}
	}
	if j.Status.Failed != 1 {
		t.Errorf("status: %+v", j.Status)
	}

	j = waitCondition(t, cs, "failindex", batchv1.JobFailed)
	if c := condition(j, batchv1.JobFailed); c.Reason != batchv1.JobReasonFailedIndexes {
		t.Errorf("Failed = %+v", c)
	}
	if st := j.Status; ptrString(st.FailedIndexes) != `"0"` || st.CompletedIndexes != "1" || st.Failed != 1 || st.Succeeded != 1 {
		t.Errorf("status: %+v (failedIndexes %s)", st, ptrString(st.FailedIndexes))
	}
	if n := len(jobPods(t, cs, "failindex")); n != 2 {
		t.Errorf("%d pods, want 2 (index 0 not retried)", n)
	}

	j = waitCondition(t, cs, "ignore", batchv1.JobComplete)
	if j.Status.Failed != 0 || j.Status.Succeeded != 1 || len(jobPods(t, cs, "ignore")) != 2 {
		t.Errorf("status: %+v, %d pods", j.Status, len(jobPods(t, cs, "ignore")))
	}
	j = waitCondition(t, cs, "evicted", batchv1.JobComplete)
	if j.Status.Failed != 0 || j.Status.Succeeded != 1 {
		t.Errorf("evicted: status %+v", j.Status)
	}
	j = waitCondition(t, cs, "count", batchv1.JobComplete)
	if j.Status.Failed != 1 || j.Status.Succeeded != 1 {
		t.Errorf("status: %+v", j.Status)
	}
	for _, name := range []string{"failjob", "ignore", "evicted", "count", "failindex"} {
		waitNoFinalizers(t, cs, name)
	}
}

func TestMatchSuccessPolicy(t *testing.T) {
	rule := func(indexes string, count int32) batchv1.SuccessPolicyRule {
		var r batchv1.SuccessPolicyRule
		if indexes != "" {
			r.SucceededIndexes = new(indexes)
		}
		if count > 0 {
			r.SucceededCount = new(count)
		}
		return r
	}
	tests := []struct {
		name      string
		rules     []batchv1.SuccessPolicyRule
		succeeded string
		want      string
	}{
		{name: "no policy", succeeded: "0-9"},
		{name: "nothing succeeded", rules: []batchv1.SuccessPolicyRule{rule("", 1)}},
		{name: "all listed indexes", rules: []batchv1.SuccessPolicyRule{rule("0,2-3", 0)}, succeeded: "0-3", want: "Matched rules at index 0"},
		{name: "one listed index missing", rules: []batchv1.SuccessPolicyRule{rule("0,2-3", 0)}, succeeded: "0-2,4-9"},
		{name: "count of listed indexes", rules: []batchv1.SuccessPolicyRule{rule("5", 0), rule("0-4", 2)}, succeeded: "1,3,7-9", want: "Matched rules at index 1"},
		{name: "count outside listed indexes does not help", rules: []batchv1.SuccessPolicyRule{rule("0-4", 2)}, succeeded: "1,7-9"},
		{name: "count alone", rules: []batchv1.SuccessPolicyRule{rule("", 3)}, succeeded: "2,5,9", want: "Matched rules at index 0"},
		{name: "count alone not reached", rules: []batchv1.SuccessPolicyRule{rule("", 4)}, succeeded: "2,5,9"},
	}
	for _, tt := range tests {
		var policy *batchv1.SuccessPolicy
		if tt.rules != nil {
			policy = &batchv1.SuccessPolicy{Rules: tt.rules}
		}
		msg, ok := matchSuccessPolicy(policy, 10, parseIntervals(tt.succeeded, 10))
		if msg != tt.want || ok != (tt.want != "") {
			t.Errorf("%s: got %q %v, want %q", tt.name, msg, ok, tt.want)
		}
	}
}

func TestSuccessPolicy(t *testing.T) {
	_, cs := startCluster(t, func(p *corev1.Pod) agentPlan {
		plan := agentPlan{ReadyAfter: 20 * time.Millisecond}
		switch p.Annotations[batchv1.JobCompletionIndexAnnotation] {
		case "0", "1":
			plan.Finish, plan.FinishAfter = corev1.PodSucceeded, 100*time.Millisecond
		}
		return plan // the other indexes run until deleted
	})
	startController(t, cs)
	w := watchPods(t, cs, "leader")
	job := indexedJob("leader", 5, 5)
	job.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{
		{SucceededIndexes: new("4")},
		{SucceededIndexes: new("0-2"), SucceededCount: new(int32(2))},
	}}
	createJob(t, cs, job)
	j := waitCondition(t, cs, "leader", batchv1.JobComplete)
	const msg = "Matched rules at index 1"
	for _, typ := range []batchv1.JobConditionType{batchv1.JobSuccessCriteriaMet, batchv1.JobComplete} {
		if c := condition(j, typ); c == nil || c.Reason != batchv1.JobReasonSuccessPolicy || c.Message != msg {
			t.Errorf("%s = %+v, want reason SuccessPolicy, message %q", typ, c, msg)
		}
	}
	if st := j.Status; st.CompletedIndexes != "0,1" || st.Succeeded != 2 || st.Failed != 0 || st.Active != 0 || *st.Terminating != 0 || st.CompletionTime == nil {
		t.Errorf("status: %+v", st)
	}
	// The three indexes still running were stopped (they finished before
	// the job completed; the agent then deletes them).
	testenv.Poll(t, "stopped pods gone", func() (bool, string) {
		pods := jobPods(t, cs, "leader")
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning {
				t.Fatalf("pod %s still running after completion", p.Name)
			}
		}
		return len(pods) == 2, fmt.Sprintf("%d pods", len(pods))
	})
	for _, p := range jobPods(t, cs, "leader") {
		if p.Status.Phase != corev1.PodSucceeded {
			t.Errorf("pod %s is %s", p.Name, p.Status.Phase)
		}
	}
	if _, seen := w.get(); seen != 5 {
		t.Errorf("%d pods created, want 5", seen)
	}
}
