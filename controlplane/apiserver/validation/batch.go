package validation

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// This file mirrors k8s.io/kubernetes/pkg/apis/batch/validation for Jobs;
// cronjob.go does for CronJobs.

// maxParallelismForIndexedJob caps an Indexed Job's parallelism.
const maxParallelismForIndexedJob = 100000

// validateJob is ValidateJob. requirePrefixedLabels asks for the
// batch.kubernetes.io/ generated labels besides the legacy ones; Kubernetes
// requires them on create, and on update only if the stored job has them.
func validateJob(job *batchv1.Job, requirePrefixedLabels bool) field.ErrorList {
	errs := validateObjectMeta(&job.ObjectMeta, true, nameIsDNSSubdomain)
	errs = append(errs, validateGeneratedSelector(job, requirePrefixedLabels)...)
	errs = append(errs, validateJobSpec(&job.Spec, field.NewPath("spec"))...)
	errs = append(errs, validateJobSelector(&job.Spec, field.NewPath("spec"))...)
	if job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion && job.Spec.Completions != nil && *job.Spec.Completions > 0 {
		// Indexed pods get the hostname <job>-<index>.
		maxHostname := fmt.Sprintf("%s-%d", job.Name, *job.Spec.Completions-1)
		if len(utilvalidation.IsDNS1123Label(maxHostname)) > 0 {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), job.Name, fmt.Sprintf("will not able to create pod with invalid DNS label: %s", maxHostname)))
		}
	}
	return errs
}

// validateGeneratedSelector checks that a job with a generated selector
// (manualSelector unset or false) selects exactly the labels generated from
// its name and uid, and that its template carries them.
func validateGeneratedSelector(job *batchv1.Job, requirePrefixedLabels bool) field.ErrorList {
	if job.Spec.ManualSelector != nil && *job.Spec.ManualSelector {
		return nil
	}
	var errs field.ErrorList
	// Without a uid the generated selector would be "controller-uid=".
	if job.UID == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "uid"), ""))
	}
	if job.Spec.Selector == nil {
		return errs // reported by validateJobSelector
	}
	templateMeta := field.NewPath("spec", "template", "metadata")
	expected := map[string]string{
		legacyControllerUIDLabel: string(job.UID),
		legacyJobNameLabel:       job.Name,
	}
	if requirePrefixedLabels {
		expected[batchv1.ControllerUidLabel] = string(job.UID)
		expected[batchv1.JobNameLabel] = job.Name
	}
	for _, k := range []string{legacyControllerUIDLabel, legacyJobNameLabel, batchv1.ControllerUidLabel, batchv1.JobNameLabel} {
		want, ok := expected[k]
		if !ok {
			continue
		}
		if got, found := job.Spec.Template.Labels[k]; !found {
			errs = append(errs, field.Required(templateMeta.Child("labels").Key(k), fmt.Sprintf("must be '%s'", want)))
		} else if got != want {
			errs = append(errs, field.Invalid(templateMeta.Child("labels").Key(k), job.Spec.Template.Labels, fmt.Sprintf("must be '%s'", want)))
		}
	}
	if s, err := metav1.LabelSelectorAsSelector(job.Spec.Selector); err == nil && !s.Matches(labels.Set(expected)) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "selector"), job.Spec.Selector, "`selector` not auto-generated"))
	}
	return errs
}

func validateJobSpec(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, f := range []struct {
		name string
		v    *int32
	}{
		{"parallelism", spec.Parallelism},
		{"completions", spec.Completions},
		{"backoffLimit", spec.BackoffLimit},
		{"ttlSecondsAfterFinished", spec.TTLSecondsAfterFinished},
		{"backoffLimitPerIndex", spec.BackoffLimitPerIndex},
		{"maxFailedIndexes", spec.MaxFailedIndexes},
	} {
		if f.v != nil {
			errs = append(errs, validateNonnegative(*f.v, fldPath.Child(f.name))...)
		}
	}
	if spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, apimachineryvalidation.ValidateNonnegativeField(*spec.ActiveDeadlineSeconds, fldPath.Child("activeDeadlineSeconds"))...)
	}
	if spec.MaxFailedIndexes != nil && spec.BackoffLimitPerIndex == nil {
		errs = append(errs, field.Required(fldPath.Child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"))
	}
	if spec.ManagedBy != nil {
		errs = append(errs, utilvalidation.IsDomainPrefixedPath(fldPath.Child("managedBy"), *spec.ManagedBy)...)
		if len(*spec.ManagedBy) > 63 {
			errs = append(errs, field.TooLongMaxLength(fldPath.Child("managedBy"), *spec.ManagedBy, 63))
		}
	}
	indexed := spec.CompletionMode != nil && *spec.CompletionMode == batchv1.IndexedCompletion
	if spec.CompletionMode != nil {
		errs = append(errs, validateEnum(*spec.CompletionMode, fldPath.Child("completionMode"), batchv1.NonIndexedCompletion, batchv1.IndexedCompletion)...)
	}
	if indexed {
		if spec.Completions == nil {
			errs = append(errs, field.Required(fldPath.Child("completions"), fmt.Sprintf("when completion mode is %s", batchv1.IndexedCompletion)))
		}
		if spec.Parallelism != nil && *spec.Parallelism > maxParallelismForIndexedJob {
			errs = append(errs, field.Invalid(fldPath.Child("parallelism"), *spec.Parallelism,
				fmt.Sprintf("must be less than or equal to %d when completion mode is %s", maxParallelismForIndexedJob, batchv1.IndexedCompletion)))
		}
		if spec.Completions != nil && spec.MaxFailedIndexes != nil && *spec.MaxFailedIndexes > *spec.Completions {
			errs = append(errs, field.Invalid(fldPath.Child("maxFailedIndexes"), *spec.MaxFailedIndexes, "must be less than or equal to completions"))
		}
	} else {
		if spec.BackoffLimitPerIndex != nil {
			errs = append(errs, field.Invalid(fldPath.Child("backoffLimitPerIndex"), *spec.BackoffLimitPerIndex, "requires indexed completion mode"))
		}
		if spec.MaxFailedIndexes != nil {
			errs = append(errs, field.Invalid(fldPath.Child("maxFailedIndexes"), *spec.MaxFailedIndexes, "requires indexed completion mode"))
		}
		if spec.SuccessPolicy != nil {
			errs = append(errs, field.Invalid(fldPath.Child("successPolicy"), *spec.SuccessPolicy, "requires indexed completion mode"))
		}
	}
	if spec.PodFailurePolicy != nil {
		errs = append(errs, validatePodFailurePolicy(spec, fldPath.Child("podFailurePolicy"))...)
	}
	if indexed && spec.SuccessPolicy != nil {
		errs = append(errs, validateSuccessPolicy(spec, fldPath.Child("successPolicy"))...)
	}
	if rp := spec.PodReplacementPolicy; rp != nil {
		if spec.PodFailurePolicy != nil {
			if *rp != batchv1.Failed {
				errs = append(errs, field.NotSupported(fldPath.Child("podReplacementPolicy"), *rp, []batchv1.PodReplacementPolicy{batchv1.Failed}))
			}
		} else {
			errs = append(errs, validateEnum(*rp, fldPath.Child("podReplacementPolicy"), batchv1.Failed, batchv1.TerminatingOrFailed)...)
		}
	}

	errs = append(errs, validatePodTemplateSpec(&spec.Template, fldPath.Child("template"))...)
	rpPath := fldPath.Child("template", "spec", "restartPolicy")
	switch rp := spec.Template.Spec.RestartPolicy; {
	case rp == corev1.RestartPolicyAlways || rp == "":
		// Always is the pod spec default, so an unset policy lands here.
		errs = append(errs, field.Required(rpPath, fmt.Sprintf("valid values: %q, %q", corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)))
	case rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever:
		errs = append(errs, field.NotSupported(rpPath, rp, []corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
	case spec.PodFailurePolicy != nil && rp != corev1.RestartPolicyNever:
		errs = append(errs, field.Invalid(rpPath, rp, fmt.Sprintf("only %q is supported when podFailurePolicy is specified", corev1.RestartPolicyNever)))
	}
	return errs
}

// validateJobSelector is the part of ValidateJobSpec that a CronJob's job
// template does not get (its jobs' selectors are generated): the selector
// is required, well-formed and matches the template's labels.
func validateJobSelector(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	selPath := fldPath.Child("selector")
	if spec.Selector == nil {
		return field.ErrorList{field.Required(selPath, "")}
	}
	errs := metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, selPath)
	if s, err := metav1.LabelSelectorAsSelector(spec.Selector); err == nil && !s.Matches(labels.Set(spec.Template.Labels)) {
		errs = append(errs, field.Invalid(fldPath.Child("template", "metadata", "labels"), spec.Template.Labels, "`selector` does not match template `labels`"))
	}
	return errs
}

// validateJobUpdate: the selector, template, completion mode and failure
// policies are immutable; completions too, except for Indexed jobs scaled
// together with parallelism. The template's scheduling directives (node
// affinity, node selector, tolerations, scheduling gates) and its labels and
// annotations may change while the job is suspended and has never started.
func validateJobUpdate(job, old *batchv1.Job) field.ErrorList {
	_, hadName := old.Spec.Template.Labels[batchv1.JobNameLabel]
	_, hadUID := old.Spec.Template.Labels[batchv1.ControllerUidLabel]
	errs := validateObjectMetaUpdate(&job.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, validateJob(job, hadName && hadUID)...)

	spec, oldSpec := &job.Spec, &old.Spec
	fldPath := field.NewPath("spec")
	indexed := spec.CompletionMode != nil && *spec.CompletionMode == batchv1.IndexedCompletion
	switch {
	case !indexed || spec.Completions == nil:
		if !indexed {
			errs = append(errs, validateImmutable(spec.Completions, oldSpec.Completions, fldPath.Child("completions"))...)
		}
	case !apiequality.Semantic.DeepEqual(spec.Completions, oldSpec.Completions) &&
		(spec.Parallelism == nil || *spec.Completions != *spec.Parallelism):
		errs = append(errs, field.Invalid(fldPath.Child("completions"), spec.Completions, "can only be modified in tandem with spec.parallelism"))
	}
	errs = append(errs, validateImmutable(spec.Selector, oldSpec.Selector, fldPath.Child("selector"))...)

	oldTemplate := &oldSpec.Template
	suspended := oldSpec.Suspend != nil && *oldSpec.Suspend
	if suspended && old.Status.StartTime == nil {
		t := oldSpec.Template.DeepCopy()
		newAffinity := spec.Template.Spec.Affinity
		switch {
		case newAffinity == nil && t.Spec.Affinity != nil:
			t.Spec.Affinity.NodeAffinity = nil
			if *t.Spec.Affinity == (corev1.Affinity{}) {
				t.Spec.Affinity = nil
			}
		case newAffinity != nil && t.Spec.Affinity == nil:
			t.Spec.Affinity = &corev1.Affinity{NodeAffinity: newAffinity.NodeAffinity}
		case newAffinity != nil && t.Spec.Affinity != nil:
			t.Spec.Affinity.NodeAffinity = newAffinity.NodeAffinity
		}
		t.Spec.NodeSelector = spec.Template.Spec.NodeSelector
		t.Spec.Tolerations = spec.Template.Spec.Tolerations
		t.Spec.SchedulingGates = spec.Template.Spec.SchedulingGates
		t.Annotations = spec.Template.Annotations
		t.Labels = spec.Template.Labels
		oldTemplate = t
	}
	errs = append(errs, validateImmutable(&spec.Template, oldTemplate, fldPath.Child("template"))...)
	errs = append(errs, validateImmutable(spec.CompletionMode, oldSpec.CompletionMode, fldPath.Child("completionMode"))...)
	errs = append(errs, validateImmutable(spec.PodFailurePolicy, oldSpec.PodFailurePolicy, fldPath.Child("podFailurePolicy"))...)
	errs = append(errs, validateImmutable(spec.BackoffLimitPerIndex, oldSpec.BackoffLimitPerIndex, fldPath.Child("backoffLimitPerIndex"))...)
	errs = append(errs, validateImmutable(spec.ManagedBy, oldSpec.ManagedBy, fldPath.Child("managedBy"))...)
	errs = append(errs, validateImmutable(spec.SuccessPolicy, oldSpec.SuccessPolicy, fldPath.Child("successPolicy"))...)
	if !apiequality.Semantic.DeepEqual(job.Status, old.Status) {
		// A write of /status: other writes keep the stored status.
		errs = append(errs, validateJobStatusUpdate(job, old)...)
	}
	return errs
}

func jobCondition(job *batchv1.Job, typ batchv1.JobConditionType) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func jobComplete(job *batchv1.Job) bool { return jobCondition(job, batchv1.JobComplete) }
func jobFailed(job *batchv1.Job) bool   { return jobCondition(job, batchv1.JobFailed) }
func jobFinished(job *batchv1.Job) bool { return jobComplete(job) || jobFailed(job) }

// validateJobStatusUpdate is Kubernetes' ValidateJobUpdateStatus with the
// options its job status strategy sets (JobManagedBy on): the counts are
// not negative, a finished job's status is consistent, terminal conditions
// and counters do not go back. As there, a rule about a field that did not
// change is not checked, so that a status a spec change made stale (a
// scaled-down Indexed job) can still be updated.
func validateJobStatusUpdate(job, old *batchv1.Job) field.ErrorList {
	st, was := &job.Status, &old.Status
	p := field.NewPath("status")
	var errs field.ErrorList
	errs = append(errs, validateNonnegative(st.Active, p.Child("active"))...)
	errs = append(errs, validateNonnegative(st.Succeeded, p.Child("succeeded"))...)
	errs = append(errs, validateNonnegative(st.Failed, p.Child("failed"))...)
	if st.Ready != nil {
		errs = append(errs, validateNonnegative(*st.Ready, p.Child("ready"))...)
	}
	if st.Terminating != nil {
		errs = append(errs, validateNonnegative(*st.Terminating, p.Child("terminating"))...)
	}
	uncounted := 0
	if u := st.UncountedTerminatedPods; u != nil {
		uncounted = len(u.Succeeded) + len(u.Failed)
		seen := map[types.UID]bool{}
		for _, list := range []struct {
			kind string
			uids []types.UID
		}{{"succeeded", u.Succeeded}, {"failed", u.Failed}} {
			for i, uid := range list.uids {
				at := p.Child("uncountedTerminatedPods", list.kind).Index(i)
				switch {
				case uid == "":
					errs = append(errs, field.Invalid(at, uid, "must not be empty"))
				case seen[uid]:
					errs = append(errs, field.Duplicate(at, uid))
				}
				seen[uid] = true
			}
		}
	}

	conds := p.Child("conditions")
	complete, failed, finished := jobComplete(job), jobFailed(job), jobFinished(job)
	failureTarget, successMet := jobCondition(job, batchv1.JobFailureTarget), jobCondition(job, batchv1.JobSuccessCriteriaMet)
	completeChanged, failedChanged := complete != jobComplete(old), failed != jobFailed(old)
	finishedChanged := finished != jobFinished(old)
	failureTargetChanged := failureTarget != jobCondition(old, batchv1.JobFailureTarget)
	startChanged := !ptr.Equal(st.StartTime, was.StartTime)
	completionChanged := !ptr.Equal(st.CompletionTime, was.CompletionTime)
	completedChanged := st.CompletedIndexes != was.CompletedIndexes
	failedIndexesChanged := !ptr.Equal(st.FailedIndexes, was.FailedIndexes)
	omit := field.OmitValueType{}
	if (completeChanged || failedChanged) && complete && failed {
		errs = append(errs, field.Invalid(conds, omit, "cannot set Complete=True and Failed=true conditions"))
	}
	if (completeChanged || failureTargetChanged) && complete && failureTarget {
		errs = append(errs, field.Invalid(conds, omit, "cannot set Complete=True and FailureTarget=true conditions"))
	}
	if (completeChanged || completionChanged) && st.CompletionTime != nil && !complete {
		errs = append(errs, field.Invalid(p.Child("completionTime"), st.CompletionTime, "cannot set completionTime when there is no Complete=True condition"))
	}
	if (completeChanged || completionChanged) && st.CompletionTime == nil && complete {
		errs = append(errs, field.Required(p.Child("completionTime"), "completionTime is required for Complete jobs"))
	}
	if (startChanged || completionChanged) && st.StartTime != nil && st.CompletionTime != nil && st.CompletionTime.Before(st.StartTime) {
		errs = append(errs, field.Invalid(p.Child("completionTime"), st.CompletionTime, "completionTime cannot be set before startTime"))
	}
	if (finishedChanged || st.Active != was.Active) && finished && st.Active > 0 {
		errs = append(errs, field.Invalid(p.Child("active"), st.Active, "active>0 is invalid for finished job"))
	}
	if (finishedChanged || startChanged) && finished && st.StartTime == nil {
		errs = append(errs, field.Required(p.Child("startTime"), "startTime is required for finished job"))
	}
	if (finishedChanged || !apiequality.Semantic.DeepEqual(st.UncountedTerminatedPods, was.UncountedTerminatedPods)) && finished && uncounted > 0 {
		errs = append(errs, field.Invalid(p.Child("uncountedTerminatedPods"), st.UncountedTerminatedPods, "uncountedTerminatedPods needs to be empty for finished job"))
	}
	completions := ptr.Deref(job.Spec.Completions, 0)
	indexed := ptr.Deref(job.Spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion
	var completed, failedIndexes [][2]int32
	var badIndexes bool
	if completedChanged && job.Spec.Completions != nil {
		var err error
		if completed, err = parseIndexes(st.CompletedIndexes, completions); err != nil {
			badIndexes = true
			errs = append(errs, field.Invalid(p.Child("completedIndexes"), st.CompletedIndexes, "error parsing completedIndexes: "+err.Error()))
		}
	}
	if failedIndexesChanged && job.Spec.Completions != nil && job.Spec.BackoffLimitPerIndex != nil && st.FailedIndexes != nil {
		var err error
		if failedIndexes, err = parseIndexes(*st.FailedIndexes, completions); err != nil {
			badIndexes = true
			errs = append(errs, field.Invalid(p.Child("failedIndexes"), st.FailedIndexes, "error parsing failedIndexes: "+err.Error()))
		}
	}
	if completedChanged && st.CompletedIndexes != "" && !indexed {
		errs = append(errs, field.Invalid(p.Child("completedIndexes"), st.CompletedIndexes, "cannot set non-empty completedIndexes when non-indexed completion mode"))
	}
	if failedIndexesChanged && job.Spec.BackoffLimitPerIndex == nil && st.FailedIndexes != nil {
		errs = append(errs, field.Invalid(p.Child("failedIndexes"), *st.FailedIndexes, "cannot set non-null failedIndexes when backoffLimitPerIndex is null"))
	}
	if (failedIndexesChanged || completedChanged) && job.Spec.Completions != nil && st.FailedIndexes != nil && !badIndexes {
		if completed == nil {
			completed, _ = parseIndexes(st.CompletedIndexes, completions)
		}
		if failedIndexes == nil {
			failedIndexes, _ = parseIndexes(*st.FailedIndexes, completions)
		}
		if i, ok := indexesOverlap(completed, failedIndexes); ok {
			errs = append(errs, field.Invalid(p.Child("failedIndexes"), *st.FailedIndexes, fmt.Sprintf("failedIndexes and completedIndexes overlap at index: %d", i)))
		}
	}
	if st.Terminating != nil && *st.Terminating > 0 && finished && (finishedChanged || !ptr.Equal(st.Terminating, was.Terminating)) {
		errs = append(errs, field.Invalid(p.Child("terminating"), st.Terminating, "terminating>0 is invalid for finished job"))
	}
	if (!ptr.Equal(st.Ready, was.Ready) || st.Active != was.Active) && st.Ready != nil && *st.Ready > st.Active {
		errs = append(errs, field.Invalid(p.Child("ready"), *st.Ready, "cannot set more ready pods than active"))
	}
	if successMet && failed {
		errs = append(errs, field.Invalid(conds, omit, "cannot set SuccessCriteriaMet=True and Failed=true conditions"))
	}
	if successMet && failureTarget {
		errs = append(errs, field.Invalid(conds, omit, "cannot set SuccessCriteriaMet=True and FailureTarget=true conditions"))
	}
	if job.Spec.SuccessPolicy != nil && !successMet && complete {
		errs = append(errs, field.Invalid(conds, omit, "cannot set Complete=True for Job with SuccessPolicy unless SuccessCriteriaMet=True"))
	}

	for _, typ := range []batchv1.JobConditionType{batchv1.JobFailed, batchv1.JobComplete, batchv1.JobFailureTarget} {
		if jobCondition(old, typ) && !jobCondition(job, typ) {
			errs = append(errs, field.Invalid(conds, omit, fmt.Sprintf("cannot disable the terminal %s=True condition", typ)))
		}
	}
	if st.Failed < was.Failed {
		errs = append(errs, field.Invalid(p.Child("failed"), st.Failed, "cannot decrease the failed counter"))
	}
	// An Indexed job whose completions follow its parallelism may be
	// scaled down, and count fewer successes.
	if st.Succeeded < was.Succeeded && (!indexed || !ptr.Equal(job.Spec.Completions, job.Spec.Parallelism)) {
		errs = append(errs, field.Invalid(p.Child("succeeded"), st.Succeeded, "cannot decrease the succeeded counter"))
	}
	if st.CompletionTime != nil && was.CompletionTime != nil && !st.CompletionTime.Equal(was.CompletionTime) {
		errs = append(errs, field.Invalid(p.Child("completionTime"), st.CompletionTime, "completionTime cannot be mutated"))
	}
	if startChanged && was.StartTime != nil && !ptr.Deref(job.Spec.Suspend, false) {
		errs = append(errs, field.Required(p.Child("startTime"), "startTime cannot be removed for unsuspended job"))
	}
	if jobCondition(old, batchv1.JobSuccessCriteriaMet) && !successMet {
		errs = append(errs, field.Invalid(conds, omit, "cannot disable the SuccessCriteriaMet=True condition"))
	}
	if jobComplete(old) && !jobCondition(old, batchv1.JobSuccessCriteriaMet) && successMet {
		errs = append(errs, field.Invalid(conds, omit, "cannot set SuccessCriteriaMet=True for Job already has Complete=true conditions"))
	}
	return errs
}

// indexesOverlap returns the first index in both a and b (increasing
// intervals).
func indexesOverlap(a, b [][2]int32) (int32, bool) {
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo, hi := max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
		if lo <= hi {
			return lo, true
		}
		if a[i][1] < b[j][1] {
			i++
		} else {
			j++
		}
	}
	return 0, false
}

// Limits of a pod failure policy.
const (
	maxPodFailurePolicyRules                   = 20
	maxPodFailurePolicyOnExitCodesValues       = 255
	maxPodFailurePolicyOnPodConditionsPatterns = 20
)

// Sorted, as Kubernetes lists them in messages.
var (
	podFailurePolicyActions = []batchv1.PodFailurePolicyAction{
		batchv1.PodFailurePolicyActionCount, batchv1.PodFailurePolicyActionFailIndex,
		batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyActionIgnore,
	}
	podFailurePolicyOperators = []batchv1.PodFailurePolicyOnExitCodesOperator{
		batchv1.PodFailurePolicyOnExitCodesOpIn, batchv1.PodFailurePolicyOnExitCodesOpNotIn,
	}
	podFailurePolicyConditionStatuses = []corev1.ConditionStatus{
		corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionUnknown,
	}
)

// validatePodFailurePolicy checks each rule: a known action (FailIndex only
// with backoffLimitPerIndex), and exactly one of onExitCodes and
// onPodConditions, each well-formed.
func validatePodFailurePolicy(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	rules := spec.PodFailurePolicy.Rules
	rulesPath := fldPath.Child("rules")
	if len(rules) > maxPodFailurePolicyRules {
		errs = append(errs, field.TooMany(rulesPath, len(rules), maxPodFailurePolicyRules))
	}
	containers := map[string]bool{}
	for _, c := range spec.Template.Spec.Containers {
		containers[c.Name] = true
	}
	for _, c := range spec.Template.Spec.InitContainers {
		containers[c.Name] = true
	}
	for i := range rules {
		rule := &rules[i]
		p := rulesPath.Index(i)
		actionPath := p.Child("action")
		switch {
		case rule.Action == "":
			errs = append(errs, field.Required(actionPath, fmt.Sprintf("valid values: %q", podFailurePolicyActions)))
		case rule.Action == batchv1.PodFailurePolicyActionFailIndex:
			if spec.BackoffLimitPerIndex == nil {
				errs = append(errs, field.Invalid(actionPath, rule.Action, "requires the backoffLimitPerIndex to be set"))
			}
		case !slices.Contains(podFailurePolicyActions, rule.Action):
			errs = append(errs, field.NotSupported(actionPath, rule.Action, podFailurePolicyActions))
		}
		if rule.OnExitCodes != nil {
			errs = append(errs, validateOnExitCodes(rule.OnExitCodes, containers, p.Child("onExitCodes"))...)
		}
		if len(rule.OnPodConditions) > 0 {
			errs = append(errs, validateOnPodConditions(rule.OnPodConditions, p.Child("onPodConditions"))...)
		}
		switch {
		case rule.OnExitCodes != nil && len(rule.OnPodConditions) > 0:
			errs = append(errs, field.Invalid(p, field.OmitValueType{}, "specifying both OnExitCodes and OnPodConditions is not supported"))
		case rule.OnExitCodes == nil && len(rule.OnPodConditions) == 0:
			errs = append(errs, field.Invalid(p, field.OmitValueType{}, "specifying one of OnExitCodes and OnPodConditions is required"))
		}
	}
	return errs
}

func validateOnExitCodes(req *batchv1.PodFailurePolicyOnExitCodesRequirement, containers map[string]bool, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	opPath := fldPath.Child("operator")
	switch {
	case req.Operator == "":
		errs = append(errs, field.Required(opPath, fmt.Sprintf("valid values: %q", podFailurePolicyOperators)))
	case !slices.Contains(podFailurePolicyOperators, req.Operator):
		errs = append(errs, field.NotSupported(opPath, req.Operator, podFailurePolicyOperators))
	}
	if req.ContainerName != nil && !containers[*req.ContainerName] {
		errs = append(errs, field.Invalid(fldPath.Child("containerName"), *req.ContainerName, "must be one of the container or initContainer names in the pod template"))
	}
	valuesPath := fldPath.Child("values")
	switch {
	case len(req.Values) == 0:
		errs = append(errs, field.Invalid(valuesPath, req.Values, "at least one value is required"))
	case len(req.Values) > maxPodFailurePolicyOnExitCodesValues:
		errs = append(errs, field.TooMany(valuesPath, len(req.Values), maxPodFailurePolicyOnExitCodesValues))
	}
	seen := map[int32]bool{}
	for j, v := range req.Values {
		if req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && v == 0 {
			errs = append(errs, field.Invalid(valuesPath.Index(j), v, "must not be 0 for the In operator"))
		}
		if seen[v] {
			errs = append(errs, field.Duplicate(valuesPath.Index(j), v))
		}
		seen[v] = true
	}
	if !slices.IsSorted(req.Values) {
		errs = append(errs, field.Invalid(valuesPath, req.Values, "must be ordered"))
	}
	return errs
}

func validateOnPodConditions(patterns []batchv1.PodFailurePolicyOnPodConditionsPattern, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(patterns) > maxPodFailurePolicyOnPodConditionsPatterns {
		errs = append(errs, field.TooMany(fldPath, len(patterns), maxPodFailurePolicyOnPodConditionsPatterns))
	}
	for j, pat := range patterns {
		p := fldPath.Index(j)
		errs = append(errs, validateQualifiedName(string(pat.Type), p.Child("type"))...)
		switch {
		case pat.Status == "":
			errs = append(errs, field.Required(p.Child("status"), fmt.Sprintf("valid values: %q", podFailurePolicyConditionStatuses)))
		case !slices.Contains(podFailurePolicyConditionStatuses, pat.Status):
			errs = append(errs, field.NotSupported(p.Child("status"), pat.Status, podFailurePolicyConditionStatuses))
		}
	}
	return errs
}

// Limits of a success policy.
const (
	maxSuccessPolicyRules     = 20
	maxSucceededIndexesLength = 64 * 1024
)

// validateSuccessPolicy checks an Indexed job's success policy: 1 to 20
// rules, each with succeededIndexes (well-formed, below completions) or
// succeededCount (not negative, at most completions and at most the number
// of succeededIndexes), or both.
func validateSuccessPolicy(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	rules := spec.SuccessPolicy.Rules
	rulesPath := fldPath.Child("rules")
	if len(rules) == 0 {
		errs = append(errs, field.Required(rulesPath, "at least one rules must be specified when the successPolicy is specified"))
	}
	if len(rules) > maxSuccessPolicyRules {
		errs = append(errs, field.TooMany(rulesPath, len(rules), maxSuccessPolicyRules))
	}
	if spec.Completions == nil {
		return errs // reported as required
	}
	completions := *spec.Completions
	for i, rule := range rules {
		p := rulesPath.Index(i)
		if rule.SucceededCount == nil && rule.SucceededIndexes == nil {
			errs = append(errs, field.Required(p, "at least one of succeededCount or succeededIndexes must be specified"))
		}
		var total int32
		if rule.SucceededIndexes != nil {
			ip := p.Child("succeededIndexes")
			if len(*rule.SucceededIndexes) > maxSucceededIndexesLength {
				errs = append(errs, field.TooLong(ip, *rule.SucceededIndexes, maxSucceededIndexesLength))
			}
			var err error
			if total, err = countIndexes(*rule.SucceededIndexes, completions); err != nil {
				errs = append(errs, field.Invalid(ip, *rule.SucceededIndexes, fmt.Sprintf("error parsing succeededIndexes: %s", err.Error())))
			}
		}
		if rule.SucceededCount != nil {
			cp := p.Child("succeededCount")
			errs = append(errs, validateNonnegative(*rule.SucceededCount, cp)...)
			if *rule.SucceededCount > completions {
				errs = append(errs, field.Invalid(cp, *rule.SucceededCount, fmt.Sprintf("must be less than or equal to %d (the number of specified completions)", completions)))
			}
			if rule.SucceededIndexes != nil && *rule.SucceededCount > total {
				errs = append(errs, field.Invalid(cp, *rule.SucceededCount, fmt.Sprintf("must be less than or equal to %d (the number of indexes in the specified succeededIndexes field)", total)))
			}
		}
	}
	return errs
}

// countIndexes parses a list of indexes and index intervals ("1,3-5,7"),
// increasing and each below completions, and counts the indexes.
func countIndexes(list string, completions int32) (int32, error) {
	intervals, err := parseIndexes(list, completions)
	var total int32
	for _, iv := range intervals {
		total += iv[1] - iv[0] + 1
	}
	return total, err
}

// parseIndexes parses a list of indexes and index intervals ("1,3-5,7"),
// increasing and each below completions, into its intervals.
func parseIndexes(list string, completions int32) ([][2]int32, error) {
	if list == "" {
		return nil, nil
	}
	var intervals [][2]int32
	last := int32(-1)
	for _, interval := range strings.Split(list, ",") {
		first, end, err := parseIndexInterval(interval, completions)
		if err != nil {
			return nil, err
		}
		if last >= first {
			return nil, fmt.Errorf("non-increasing order, previous: %d, current: %d", last, first)
		}
		intervals = append(intervals, [2]int32{first, end})
		last = end
	}
	return intervals, nil
}

// parseIndexInterval parses "x" or "x-y" with x < y < completions.
func parseIndexInterval(interval string, completions int32) (int32, int32, error) {
	parts := strings.Split(interval, "-")
	if len(parts) > 2 {
		return 0, 0, fmt.Errorf("the fragment %q violates the requirement that an index interval can have at most two parts separated by '-'", interval)
	}
	bounds := make([]int32, len(parts))
	for i, part := range parts {
		n, err := strconv.Atoi(part)
		if err != nil {
			return 0, 0, fmt.Errorf("cannot convert string to integer for index: %q", part)
		}
		if n >= int(completions) {
			return 0, 0, fmt.Errorf("too large index: %q", part)
		}
		bounds[i] = int32(n)
	}
	if len(bounds) == 1 {
		return bounds[0], bounds[0], nil
	}
	if bounds[0] >= bounds[1] {
		return 0, 0, fmt.Errorf("non-increasing order, previous: %d, current: %d", bounds[0], bounds[1])
	}
	return bounds[0], bounds[1], nil
}
