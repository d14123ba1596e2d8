package job

import (
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// This file holds the Job's pod failure policy (pod_failure_policy.go in
// Kubernetes).

// policyMatch is what a job's pod failure policy says about a failed pod.
type policyMatch struct {
	// action is the matching rule's, "" when no rule matches.
	action batchv1.PodFailurePolicyAction
	// count: the failure counts against backoffLimit and
	// backoffLimitPerIndex (all but Ignore).
	count bool
	// failJob is the job's failure message under FailJob.
	failJob string
}

// matchPodFailurePolicy applies the first rule of policy (nil: none) that
// matches the failed pod p: on the exit code of a terminated container
// (non-zero; containers before init containers) or on a pod condition.
func matchPodFailurePolicy(policy *batchv1.PodFailurePolicy, p *corev1.Pod) policyMatch {
	if policy == nil {
		return policyMatch{count: true}
	}
	for i, rule := range policy.Rules {
		var failJob string
		switch {
		case rule.OnExitCodes != nil:
			cs := matchExitCodes(p, rule.OnExitCodes)
			if cs == nil {
				continue
			}
			failJob = fmt.Sprintf("Container %s for pod %s/%s failed with exit code %v matching %v rule at index %d",
				cs.Name, p.Namespace, p.Name, cs.State.Terminated.ExitCode, rule.Action, i)
		case rule.OnPodConditions != nil:
			c := matchPodConditions(p, rule.OnPodConditions)
			if c == nil {
				continue
			}
			failJob = fmt.Sprintf("Pod %s/%s has condition %v matching %v rule at index %d", p.Namespace, p.Name, c.Type, rule.Action, i)
		default:
			continue
		}
		switch rule.Action {
		case batchv1.PodFailurePolicyActionIgnore:
			return policyMatch{action: rule.Action}
		case batchv1.PodFailurePolicyActionFailJob:
			return policyMatch{action: rule.Action, count: true, failJob: failJob}
		case batchv1.PodFailurePolicyActionCount, batchv1.PodFailurePolicyActionFailIndex:
			return policyMatch{action: rule.Action, count: true}
		}
	}
	return policyMatch{count: true}
}

func matchExitCodes(p *corev1.Pod, req *batchv1.PodFailurePolicyOnExitCodesRequirement) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range list {
			cs := &list[i]
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 || (req.ContainerName != nil && *req.ContainerName != cs.Name) {
				continue
			}
			in := slices.Contains(req.Values, t.ExitCode)
			if (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && in) || (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpNotIn && !in) {
				return cs
			}
		}
	}
	return nil
}

func matchPodConditions(p *corev1.Pod, patterns []batchv1.PodFailurePolicyOnPodConditionsPattern) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		for _, pat := range patterns {
			if c.Type == pat.Type && c.Status == pat.Status {
				return c
			}
		}
	}
	return nil
}

// failJobMessage is the message of the first failed pod whose failure the
// policy says fails the job, or "".
func failJobMessage(job *batchv1.Job, pods []*corev1.Pod) string {
	if job.Spec.PodFailurePolicy == nil {
		return ""
	}
	for _, p := range pods {
		if isPodFailed(p, job) {
			if m := matchPodFailurePolicy(job.Spec.PodFailurePolicy, p); m.failJob != "" {
				return m.failJob
			}
		}
	}
	return ""
}

// countedFailures is how many of the failed pods count against the
// backoff limit.
func countedFailures(job *batchv1.Job, failed []*corev1.Pod) int {
	n := 0
	for _, p := range failed {
		if matchPodFailurePolicy(job.Spec.PodFailurePolicy, p).count {
			n++
		}
	}
	return n
}

// matchSuccessPolicy says whether an Indexed job's succeeded indexes meet
// a rule of its success policy (nil: none), and the message of the
// SuccessCriteriaMet condition: a rule with succeededIndexes needs all of
// them, or succeededCount of them if set; one with only succeededCount
// needs that many indexes.
func matchSuccessPolicy(policy *batchv1.SuccessPolicy, completions int, succeeded intervals) (string, bool) {
	if policy == nil || len(succeeded) == 0 {
		return "", false
	}
	for i, rule := range policy.Rules {
		met := false
		switch {
		case rule.SucceededIndexes != nil:
			want := parseIntervals(*rule.SucceededIndexes, completions)
			if len(want) == 0 {
				continue
			}
			n := overlap(want, succeeded)
			met = n == want.total() || (rule.SucceededCount != nil && n >= int(*rule.SucceededCount))
		case rule.SucceededCount != nil:
			met = succeeded.total() >= int(*rule.SucceededCount)
		}
		if met {
			return fmt.Sprintf("Matched rules at index %d", i), true
		}
	}
	return "", false
}

// overlap is how many indexes a and b have in common.
func overlap(a, b intervals) int {
	n := 0
	for i, j := 0, 0; i < len(a) && j < len(b); {
		if o := min(a[i].last, b[j].last) - max(a[i].first, b[j].first) + 1; o > 0 {
			n += o
		}
		if a[i].last < b[j].last {
			i++
		} else {
			j++
		}
	}
	return n
}
