package validation

import (
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// withPolicy gives a job a pod failure policy of these rules, and lets
// defaulting pick the pod replacement policy that goes with one.
func withPolicy(j *batchv1.Job, rules ...batchv1.PodFailurePolicyRule) {
	j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: rules}
	j.Spec.PodReplacementPolicy = nil
}

func exitCodes(op batchv1.PodFailurePolicyOnExitCodesOperator, values ...int32) *batchv1.PodFailurePolicyOnExitCodesRequirement {
	return &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: op, Values: values}
}

func TestValidateJobPodFailurePolicy(t *testing.T) {
	const rule0 = "spec.podFailurePolicy.rules[0]"
	runCreateCases(t, testJob, []createCase[*batchv1.Job]{
		{name: "valid rules", mutate: func(j *batchv1.Job) {
			withPolicy(j,
				batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 1, 42)},
				batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget}}},
				batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionCount, OnExitCodes: exitCodes(batchv1.PodFailurePolicyOnExitCodesOpNotIn, 0)},
			)
		}},
		{name: "unknown action", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: "Bogus", OnExitCodes: exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 1)})
		}, want: []want{notSupported(rule0 + ".action")}},
		{name: "action required", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{OnExitCodes: exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 1)})
		}, want: []want{required(rule0 + ".action")}},
		{name: "FailIndex needs backoffLimitPerIndex", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailIndex, OnExitCodes: exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 1)})
		}, want: []want{invalid(rule0 + ".action")}},
		{name: "FailIndex with backoffLimitPerIndex", mutate: func(j *batchv1.Job) {
			j.Spec.CompletionMode = ptrTo(batchv1.IndexedCompletion)
			j.Spec.Completions = ptrTo[int32](3)
			j.Spec.BackoffLimitPerIndex = ptrTo[int32](1)
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailIndex, OnExitCodes: exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 1)})
		}},
		{name: "neither exit codes nor conditions", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailJob})
		}, want: []want{invalid(rule0)}},
		{name: "both exit codes and conditions", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{
				Action:          batchv1.PodFailurePolicyActionFailJob,
				OnExitCodes:     exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 1),
				OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget}},
			})
		}, want: []want{invalid(rule0)}},
		{name: "operator", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: exitCodes("Between", 1)})
		}, want: []want{notSupported(rule0 + ".onExitCodes.operator")}},
		{name: "operator required", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: exitCodes("", 1)})
		}, want: []want{required(rule0 + ".onExitCodes.operator")}},
		{name: "no exit codes", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn)})
		}, want: []want{invalid(rule0 + ".onExitCodes.values")}},
		{name: "exit code 0 with In", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 0, 1)})
		}, want: []want{invalid(rule0 + ".onExitCodes.values[0]")}},
		{name: "duplicate exit codes", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 1, 1)})
		}, want: []want{duplicate(rule0 + ".onExitCodes.values[1]")}},
		{name: "unordered exit codes", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 3, 2)})
		}, want: []want{invalid(rule0 + ".onExitCodes.values")}},
		{name: "unknown container", mutate: func(j *batchv1.Job) {
			codes := exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 1)
			codes.ContainerName = ptrTo("sidecar")
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: codes})
		}, want: []want{invalid(rule0 + ".onExitCodes.containerName")}},
		{name: "known container", mutate: func(j *batchv1.Job) {
			codes := exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 1)
			codes.ContainerName = ptrTo(testContainer().Name)
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: codes})
		}},
		{name: "condition type", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionIgnore,
				OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: "not a type"}}})
		}, want: []want{invalid(rule0 + ".onPodConditions[0].type")}},
		{name: "condition status", mutate: func(j *batchv1.Job) {
			withPolicy(j, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionIgnore,
				OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: "Maybe"}}})
		}, want: []want{notSupported(rule0 + ".onPodConditions[0].status")}},
		{name: "too many rules", mutate: func(j *batchv1.Job) {
			var rules []batchv1.PodFailurePolicyRule
			for range 21 {
				rules = append(rules, batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionIgnore,
					OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget}}})
			}
			withPolicy(j, rules...)
		}, want: []want{{"FieldValueTooMany", "spec.podFailurePolicy.rules"}}},
	})
}

func TestPodFailurePolicyMessagesReadLikeKubernetes(t *testing.T) {
	j := testJob()
	withPolicy(j, batchv1.PodFailurePolicyRule{Action: "Bogus", OnExitCodes: exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 1)})
	Default(j)
	errs := ValidateCreate(j)
	want := `spec.podFailurePolicy.rules[0].action: Unsupported value: "Bogus": supported values: "Count", "FailIndex", "FailJob", "Ignore"`
	if len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("got %v\nwant %s", errs, want)
	}
	j = testJob()
	withPolicy(j, batchv1.PodFailurePolicyRule{OnExitCodes: exitCodes(batchv1.PodFailurePolicyOnExitCodesOpIn, 1)})
	Default(j)
	if errs := ValidateCreate(j); len(errs) != 1 || !strings.HasSuffix(errs[0].Error(), `Required value: valid values: ["Count" "FailIndex" "FailJob" "Ignore"]`) {
		t.Errorf("got %v", errs)
	}
}
