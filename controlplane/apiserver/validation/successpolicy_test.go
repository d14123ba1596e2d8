package validation

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"
)

// indexedWithSuccess makes j an Indexed job of 5 completions with these
// success policy rules.
func indexedWithSuccess(j *batchv1.Job, rules ...batchv1.SuccessPolicyRule) {
	j.Spec.CompletionMode = ptrTo(batchv1.IndexedCompletion)
	j.Spec.Completions = ptrTo[int32](5)
	j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: rules}
}

func TestValidateJobSuccessPolicy(t *testing.T) {
	const rule0 = "spec.successPolicy.rules[0]"
	runCreateCases(t, testJob, []createCase[*batchv1.Job]{
		{name: "indexes and count", mutate: func(j *batchv1.Job) {
			indexedWithSuccess(j, batchv1.SuccessPolicyRule{SucceededIndexes: ptrTo("0,2-4"), SucceededCount: ptrTo[int32](4)})
		}},
		{name: "count alone", mutate: func(j *batchv1.Job) {
			indexedWithSuccess(j, batchv1.SuccessPolicyRule{SucceededCount: ptrTo[int32](5)})
		}},
		{name: "no rules", mutate: func(j *batchv1.Job) { indexedWithSuccess(j) }, want: []want{required("spec.successPolicy.rules")}},
		{name: "empty rule", mutate: func(j *batchv1.Job) { indexedWithSuccess(j, batchv1.SuccessPolicyRule{}) }, want: []want{required(rule0)}},
		{name: "count above completions", mutate: func(j *batchv1.Job) {
			indexedWithSuccess(j, batchv1.SuccessPolicyRule{SucceededCount: ptrTo[int32](6)})
		}, want: []want{invalid(rule0 + ".succeededCount")}},
		{name: "negative count", mutate: func(j *batchv1.Job) {
			indexedWithSuccess(j, batchv1.SuccessPolicyRule{SucceededCount: ptrTo[int32](-1)})
		}, want: []want{invalid(rule0 + ".succeededCount")}},
		{name: "count above the indexes", mutate: func(j *batchv1.Job) {
			indexedWithSuccess(j, batchv1.SuccessPolicyRule{SucceededIndexes: ptrTo("1-2"), SucceededCount: ptrTo[int32](3)})
		}, want: []want{invalid(rule0 + ".succeededCount")}},
		{name: "index too large", mutate: func(j *batchv1.Job) {
			indexedWithSuccess(j, batchv1.SuccessPolicyRule{SucceededIndexes: ptrTo("0,5")})
		}, want: []want{invalid(rule0 + ".succeededIndexes")}},
		{name: "indexes out of order", mutate: func(j *batchv1.Job) {
			indexedWithSuccess(j, batchv1.SuccessPolicyRule{SucceededIndexes: ptrTo("3,1")})
		}, want: []want{invalid(rule0 + ".succeededIndexes")}},
		{name: "interval backwards", mutate: func(j *batchv1.Job) {
			indexedWithSuccess(j, batchv1.SuccessPolicyRule{SucceededIndexes: ptrTo("3-1")})
		}, want: []want{invalid(rule0 + ".succeededIndexes")}},
		{name: "not a number", mutate: func(j *batchv1.Job) {
			indexedWithSuccess(j, batchv1.SuccessPolicyRule{SucceededIndexes: ptrTo("one")})
		}, want: []want{invalid(rule0 + ".succeededIndexes")}},
		{name: "three-part interval", mutate: func(j *batchv1.Job) {
			indexedWithSuccess(j, batchv1.SuccessPolicyRule{SucceededIndexes: ptrTo("0-1-2")})
		}, want: []want{invalid(rule0 + ".succeededIndexes")}},
	})

	j := testJob()
	indexedWithSuccess(j, batchv1.SuccessPolicyRule{SucceededIndexes: ptrTo("0,5")})
	Default(j)
	errs := ValidateCreate(j)
	want := `spec.successPolicy.rules[0].succeededIndexes: Invalid value: "0,5": error parsing succeededIndexes: too large index: "5"`
	if len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("got %v\nwant %s", errs, want)
	}
}
