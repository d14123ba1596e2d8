package validation

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// This file mirrors the CronJob parts of
// k8s.io/kubernetes/pkg/apis/batch/validation and the CronJob defaults of
// pkg/apis/batch/v1/defaults.go.

// maxCronJobNameLength: the controller names a CronJob's jobs
// <name>-<minutes since the epoch>, an 11-character suffix, and a Job's
// name must be a DNS-1035 label's 63 characters at most (its pods' labels
// carry it).
const maxCronJobNameLength = utilvalidation.DNS1035LabelMaxLength - 11

// defaultCronJob is SetObjectDefaults_CronJob: the CronJob's own defaults,
// the pod defaults of its job template's pod template and the status of
// its pod failure policy's condition patterns. The job template's JobSpec
// is not otherwise defaulted (Kubernetes defaults a Job, not a JobSpec):
// its jobs get the Job defaults when they are created.
func defaultCronJob(cj *batchv1.CronJob) {
	spec := &cj.Spec
	if spec.ConcurrencyPolicy == "" {
		spec.ConcurrencyPolicy = batchv1.AllowConcurrent
	}
	if spec.Suspend == nil {
		spec.Suspend = ptrTo(false)
	}
	if spec.SuccessfulJobsHistoryLimit == nil {
		spec.SuccessfulJobsHistoryLimit = ptrTo[int32](3)
	}
	if spec.FailedJobsHistoryLimit == nil {
		spec.FailedJobsHistoryLimit = ptrTo[int32](1)
	}
	defaultOnPodConditions(&spec.JobTemplate.Spec)
	defaultPodTemplateSpec(&spec.JobTemplate.Spec.Template)
}

// validateCronJobCreate is ValidateCronJobCreate: the metadata (a DNS
// subdomain name of at most 52 characters), the spec, and no TZ= or
// CRON_TZ= in the schedule.
func validateCronJobCreate(cj *batchv1.CronJob) field.ErrorList {
	errs := validateObjectMeta(&cj.ObjectMeta, true, nameIsDNSSubdomain)
	errs = append(errs, validateCronJobSpec(&cj.Spec, nil, field.NewPath("spec"))...)
	if len(cj.Name) > maxCronJobNameLength {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), cj.Name, fmt.Sprintf("must be no more than %d characters", maxCronJobNameLength)))
	}
	return errs
}

// validateCronJobUpdate is ValidateCronJobUpdate. As in Kubernetes, the
// name's length is not checked again (older CronJobs may have longer
// names), a TZ in the schedule stays allowed where the stored schedule had
// one, and the time zone is only looked up again when it changes (the
// time zone database may have lost a name since).
func validateCronJobUpdate(cj, old *batchv1.CronJob) field.ErrorList {
	errs := validateObjectMetaUpdate(&cj.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, validateObjectMeta(&cj.ObjectMeta, true, nameIsDNSSubdomain)...)
	errs = append(errs, validateCronJobSpec(&cj.Spec, &old.Spec, field.NewPath("spec"))...)
	return errs
}

// validateCronJobSpec checks a CronJobSpec; old is the stored one on
// update, nil on create.
func validateCronJobSpec(spec, old *batchv1.CronJobSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.Schedule == "" {
		errs = append(errs, field.Required(fldPath.Child("schedule"), ""))
	} else {
		allowTZ := old != nil && strings.Contains(old.Schedule, "TZ")
		errs = append(errs, validateSchedule(spec.Schedule, allowTZ, spec.TimeZone, fldPath.Child("schedule"))...)
	}
	if spec.StartingDeadlineSeconds != nil {
		errs = append(errs, apimachineryvalidation.ValidateNonnegativeField(*spec.StartingDeadlineSeconds, fldPath.Child("startingDeadlineSeconds"))...)
	}
	if old == nil || !ptr.Equal(old.TimeZone, spec.TimeZone) {
		errs = append(errs, validateTimeZone(spec.TimeZone, fldPath.Child("timeZone"))...)
	}
	cp := fldPath.Child("concurrencyPolicy")
	switch spec.ConcurrencyPolicy {
	case batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
	case "":
		errs = append(errs, field.Required(cp, ""))
	default:
		errs = append(errs, field.NotSupported(cp, spec.ConcurrencyPolicy,
			[]batchv1.ConcurrencyPolicy{batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent}))
	}
	errs = append(errs, validateJobTemplateSpec(&spec.JobTemplate, fldPath.Child("jobTemplate"))...)
	if spec.SuccessfulJobsHistoryLimit != nil {
		errs = append(errs, validateNonnegative(*spec.SuccessfulJobsHistoryLimit, fldPath.Child("successfulJobsHistoryLimit"))...)
	}
	if spec.FailedJobsHistoryLimit != nil {
		errs = append(errs, validateNonnegative(*spec.FailedJobsHistoryLimit, fldPath.Child("failedJobsHistoryLimit"))...)
	}
	return errs
}

// validateSchedule parses schedule as the controller does (robfig/cron's
// standard five fields or a descriptor such as @hourly) and refuses a
// TZ=/CRON_TZ= prefix unless the stored schedule had one already (then it
// may not be combined with spec.timeZone).
func validateSchedule(schedule string, allowTZ bool, timeZone *string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if _, err := cron.ParseStandard(schedule); err != nil {
		errs = append(errs, field.Invalid(fldPath, schedule, err.Error()))
	}
	switch {
	case allowTZ && strings.Contains(schedule, "TZ") && timeZone != nil:
		errs = append(errs, field.Invalid(fldPath, schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
	case !allowTZ && strings.Contains(schedule, "TZ"):
		errs = append(errs, field.Invalid(fldPath, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
	}
	return errs
}

// timeZoneComponent is what a component of an IANA time zone name may be
// (https://data.iana.org/time-zones/theory.html#naming, with the digits
// and '+' of the legacy names): names that could reach outside the time
// zone database (".." and the like) are refused before it is read.
var timeZoneComponent = regexp.MustCompile(`^[A-Za-z._\-0-9+]{1,14}$`)

// validateTimeZone: unset, or a name the time zone database knows other
// than "Local" (the API server's own zone is no contract).
func validateTimeZone(tz *string, fldPath *field.Path) field.ErrorList {
	if tz == nil {
		return nil
	}
	if *tz == "" {
		return field.ErrorList{field.Invalid(fldPath, *tz, "timeZone must be nil or non-empty string")}
	}
	for _, part := range strings.Split(*tz, "/") {
		if part == "." || part == ".." || strings.HasPrefix(part, "-") || !timeZoneComponent.MatchString(part) {
			return field.ErrorList{field.Invalid(fldPath, *tz, fmt.Sprintf("unknown time zone %s", *tz))}
		}
	}
	var errs field.ErrorList
	if strings.EqualFold(*tz, "Local") {
		errs = append(errs, field.Invalid(fldPath, *tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
	}
	if _, err := time.LoadLocation(*tz); err != nil {
		errs = append(errs, field.Invalid(fldPath, *tz, err.Error()))
	}
	return errs
}

// validateJobTemplateSpec is ValidateJobTemplateSpec: the JobSpec as a
// Job's, except that the selector is generated for each job, so none may
// be given, nor manualSelector true.
func validateJobTemplateSpec(t *batchv1.JobTemplateSpec, fldPath *field.Path) field.ErrorList {
	specPath := fldPath.Child("spec")
	errs := validateJobSpec(&t.Spec, specPath)
	if t.Spec.Selector != nil {
		errs = append(errs, field.Invalid(specPath.Child("selector"), t.Spec.Selector, "`selector` will be auto-generated"))
	}
	if t.Spec.ManualSelector != nil && *t.Spec.ManualSelector {
		errs = append(errs, field.NotSupported(specPath.Child("manualSelector"), t.Spec.ManualSelector, []string{"nil", "false"}))
	}
	return errs
}
