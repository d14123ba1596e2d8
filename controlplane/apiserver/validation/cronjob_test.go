package validation

import (
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDefaultCronJob(t *testing.T) {
	cj := testCronJob()
	Default(cj)
	s := cj.Spec
	check(t, "concurrencyPolicy", s.ConcurrencyPolicy, batchv1.AllowConcurrent)
	check(t, "suspend", *s.Suspend, false)
	check(t, "successfulJobsHistoryLimit", *s.SuccessfulJobsHistoryLimit, int32(3))
	check(t, "failedJobsHistoryLimit", *s.FailedJobsHistoryLimit, int32(1))
	// The pod template gets the pod defaults; the JobSpec none (as
	// Kubernetes: its jobs get them when created).
	check(t, "template imagePullPolicy", s.JobTemplate.Spec.Template.Spec.Containers[0].ImagePullPolicy, corev1.PullIfNotPresent)
	check(t, "template dnsPolicy", s.JobTemplate.Spec.Template.Spec.DNSPolicy, corev1.DNSClusterFirst)
	if s.JobTemplate.Spec.BackoffLimit != nil || s.JobTemplate.Spec.Selector != nil || s.JobTemplate.Spec.Completions != nil {
		t.Errorf("job template spec defaulted: %+v", s.JobTemplate.Spec)
	}
	// Except its pod failure policy's condition patterns, whose type's
	// defaulter reaches them (a pattern without a status matches True),
	// so the CronJob validates as the Job would.
	withPolicy := testCronJob()
	withPolicy.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	withPolicy.Spec.JobTemplate.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
		Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget}}}}}
	Default(withPolicy)
	check(t, "onPodConditions status", withPolicy.Spec.JobTemplate.Spec.PodFailurePolicy.Rules[0].OnPodConditions[0].Status, corev1.ConditionTrue)
	if errs := ValidateCreate(withPolicy); len(errs) > 0 {
		t.Errorf("a CronJob whose job template ignores disruptions: %v", errs)
	}

	given := testCronJob()
	given.Spec.ConcurrencyPolicy = batchv1.ForbidConcurrent
	given.Spec.Suspend = ptrTo(true)
	given.Spec.SuccessfulJobsHistoryLimit = ptrTo[int32](0)
	Default(given)
	check(t, "given concurrencyPolicy", given.Spec.ConcurrencyPolicy, batchv1.ForbidConcurrent)
	check(t, "given suspend", *given.Spec.Suspend, true)
	check(t, "given successfulJobsHistoryLimit", *given.Spec.SuccessfulJobsHistoryLimit, int32(0))
}

func TestValidateCronJob(t *testing.T) {
	runCreateCases(t, testCronJob, []createCase[*batchv1.CronJob]{
		{name: "descriptor schedule", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "@hourly" }},
		{name: "every schedule", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "@every 1h30m" }},
		{name: "named days", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "30 6 * * MON-FRI" }},
		{name: "no schedule", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "" }, want: []want{required("spec.schedule")}},
		{name: "six fields", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "0 * * * * *" }, want: []want{invalid("spec.schedule")}},
		{name: "minute out of range", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "61 * * * *" }, want: []want{invalid("spec.schedule")}},
		{name: "garbage schedule", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "every day" }, want: []want{invalid("spec.schedule")}},
		{name: "TZ in schedule", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "TZ=Europe/Paris 0 3 * * *" }, want: []want{invalid("spec.schedule")}},
		{name: "CRON_TZ in schedule", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "CRON_TZ=UTC 0 3 * * *" }, want: []want{invalid("spec.schedule")}},
		{name: "time zone", mutate: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptrTo("Europe/Berlin") }},
		{name: "time zone Etc/UTC", mutate: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptrTo("Etc/UTC") }},
		{name: "unknown time zone", mutate: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptrTo("Mars/Olympus_Mons") }, want: []want{invalid("spec.timeZone")}},
		{name: "empty time zone", mutate: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptrTo("") }, want: []want{invalid("spec.timeZone")}},
		{name: "Local time zone", mutate: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptrTo("Local") }, want: []want{invalid("spec.timeZone")}},
		{name: "time zone path", mutate: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptrTo("../../etc/passwd") }, want: []want{invalid("spec.timeZone")}},
		{name: "negative starting deadline", mutate: func(cj *batchv1.CronJob) { cj.Spec.StartingDeadlineSeconds = ptrTo[int64](-1) }, want: []want{invalid("spec.startingDeadlineSeconds")}},
		{name: "concurrency policy", mutate: func(cj *batchv1.CronJob) { cj.Spec.ConcurrencyPolicy = "Sometimes" }, want: []want{notSupported("spec.concurrencyPolicy")}},
		{name: "negative history limits", mutate: func(cj *batchv1.CronJob) {
			cj.Spec.SuccessfulJobsHistoryLimit = ptrTo[int32](-1)
			cj.Spec.FailedJobsHistoryLimit = ptrTo[int32](-2)
		}, want: []want{invalid("spec.successfulJobsHistoryLimit"), invalid("spec.failedJobsHistoryLimit")}},
		{name: "zero history limits", mutate: func(cj *batchv1.CronJob) {
			cj.Spec.SuccessfulJobsHistoryLimit = ptrTo[int32](0)
			cj.Spec.FailedJobsHistoryLimit = ptrTo[int32](0)
		}},
		{name: "name of 52 characters", mutate: func(cj *batchv1.CronJob) { cj.Name = strings.Repeat("a", 52) }},
		{name: "name of 53 characters", mutate: func(cj *batchv1.CronJob) { cj.Name = strings.Repeat("a", 53) }, want: []want{invalid("metadata.name")}},
		{name: "name not a subdomain", mutate: func(cj *batchv1.CronJob) { cj.Name = "Upload" }, want: []want{invalid("metadata.name")}},
		{name: "template restart policy Always", mutate: func(cj *batchv1.CronJob) {
			cj.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
		}, want: []want{required("spec.jobTemplate.spec.template.spec.restartPolicy")}},
		{name: "template selector", mutate: func(cj *batchv1.CronJob) {
			cj.Spec.JobTemplate.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
		}, want: []want{invalid("spec.jobTemplate.spec.selector")}},
		{name: "template manual selector", mutate: func(cj *batchv1.CronJob) { cj.Spec.JobTemplate.Spec.ManualSelector = ptrTo(true) },
			want: []want{notSupported("spec.jobTemplate.spec.manualSelector")}},
		{name: "template negative backoff limit", mutate: func(cj *batchv1.CronJob) { cj.Spec.JobTemplate.Spec.BackoffLimit = ptrTo[int32](-1) },
			want: []want{invalid("spec.jobTemplate.spec.backoffLimit")}},
		{name: "template without containers", mutate: func(cj *batchv1.CronJob) { cj.Spec.JobTemplate.Spec.Template.Spec.Containers = nil },
			want: []want{required("spec.jobTemplate.spec.template.spec.containers")}},
	})

	t.Run("messages", func(t *testing.T) {
		cj := testCronJob()
		cj.Spec.Schedule = "TZ=UTC 0 3 * * *"
		Default(cj)
		errs := ValidateCreate(cj)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "cannot use TZ or CRON_TZ in schedule, use timeZone field instead") {
			t.Errorf("TZ in schedule: %v", errs)
		}
		cj = testCronJob()
		cj.Spec.Schedule = "61 * * * *"
		Default(cj)
		errs = ValidateCreate(cj)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "end of range (61) above maximum (59): 61") {
			t.Errorf("minute out of range: %v", errs)
		}
		cj = testCronJob()
		cj.Spec.TimeZone = ptrTo("Mars/Olympus_Mons")
		Default(cj)
		errs = ValidateCreate(cj)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "unknown time zone Mars/Olympus_Mons") {
			t.Errorf("unknown time zone: %v", errs)
		}
	})
}

func TestValidateCronJobUpdate(t *testing.T) {
	runUpdateCases(t, stored(testCronJob), []updateCase[*batchv1.CronJob]{
		{name: "schedule", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "0 0 * * *" }},
		{name: "suspend", mutate: func(cj *batchv1.CronJob) { cj.Spec.Suspend = ptrTo(true) }},
		{name: "template", mutate: func(cj *batchv1.CronJob) {
			cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image = "registry.local/app:2.0"
		}},
		{name: "bad schedule", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "* *" }, want: []want{invalid("spec.schedule")}},
		{name: "TZ added", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "TZ=UTC * * * * *" }, want: []want{invalid("spec.schedule")}},
		{name: "unknown time zone", mutate: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptrTo("Nowhere/Special") }, want: []want{invalid("spec.timeZone")}},
	})

	long := func() *batchv1.CronJob {
		cj := testCronJob()
		cj.Name = strings.Repeat("b", 60)
		return cj
	}
	runUpdateCases(t, stored(long), []updateCase[*batchv1.CronJob]{
		{name: "stored name longer than 52 may be updated", mutate: func(cj *batchv1.CronJob) { cj.Spec.Suspend = ptrTo(true) }},
	})

	withTZ := func() *batchv1.CronJob {
		cj := testCronJob()
		cj.Spec.Schedule = "CRON_TZ=UTC 0 3 * * *"
		return cj
	}
	runUpdateCases(t, stored(withTZ), []updateCase[*batchv1.CronJob]{
		{name: "stored TZ schedule may stay", mutate: func(cj *batchv1.CronJob) { cj.Spec.Suspend = ptrTo(true) }},
		{name: "stored TZ schedule may change", mutate: func(cj *batchv1.CronJob) { cj.Spec.Schedule = "CRON_TZ=UTC 0 4 * * *" }},
		{name: "but not with timeZone", mutate: func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptrTo("Europe/Paris") }, want: []want{invalid("spec.schedule")}},
	})
}
