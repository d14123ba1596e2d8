package cronjob

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// This file holds the controller's decisions that depend only on a CronJob,
// its jobs and the time, as Kubernetes' pkg/controller/cronjob/utils.go.

// nextScheduleDelta pads every wake-up, as Kubernetes does, so that a
// clock a little behind the schedule does not wake the controller just
// before the time it waits for.
const nextScheduleDelta = 100 * time.Millisecond

// maxMissedSchedules: more missed start times than this is reported as
// "too many" (a clock off by decades must not make the controller list
// them all); the most recent one still runs.
const maxMissedSchedules = 100

// missed says how many start times passed unmet before the most recent one.
type missed int

const (
	noneMissed missed = iota
	fewMissed
	manyMissed
)

// parseSchedule parses cj's schedule in its time zone: spec.timeZone
// becomes a TZ= prefix, as Kubernetes does; a schedule that carries its
// own TZ= or CRON_TZ= (allowed only where it was stored before the API
// refused them) keeps it, and tz reports that.
func parseSchedule(cj *batchv1.CronJob) (sched cron.Schedule, tzInSchedule bool, err error) {
	s := cj.Spec.Schedule
	switch {
	case strings.Contains(s, "TZ"):
		tzInSchedule = true
	case cj.Spec.TimeZone != nil:
		if _, err := time.LoadLocation(*cj.Spec.TimeZone); err != nil {
			return nil, false, err
		}
		s = "TZ=" + *cj.Spec.TimeZone + " " + s
	}
	sched, err = cron.ParseStandard(s)
	return sched, tzInSchedule, err
}

// mostRecentScheduleTime returns the time from which start times count
// (the last schedule time, else the creation time; with deadline, not
// before now minus startingDeadlineSeconds), the most recent start time
// not after now (nil if none), and how many were missed. The error is for
// schedules that parse but never fire twice a second apart (31 February).
//
// The number of missed times is estimated from the interval between the
// first two, as Kubernetes does, so that a schedule missed for years costs
// no more than one missed for minutes.
func mostRecentScheduleTime(cj *batchv1.CronJob, now time.Time, sched cron.Schedule, deadline bool) (time.Time, *time.Time, missed, error) {
	earliest := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		earliest = cj.Status.LastScheduleTime.Time
	}
	if deadline && cj.Spec.StartingDeadlineSeconds != nil {
		if d := now.Add(-time.Duration(*cj.Spec.StartingDeadlineSeconds) * time.Second); d.After(earliest) {
			earliest = d
		}
	}
	t1 := sched.Next(earliest)
	t2 := sched.Next(t1)
	if now.Before(t1) {
		return earliest, nil, noneMissed, nil
	}
	if now.Before(t2) {
		return earliest, &t1, noneMissed, nil
	}
	interval := int64(t2.Sub(t1).Round(time.Second).Seconds())
	if interval < 1 {
		return earliest, nil, noneMissed, fmt.Errorf("time difference between two schedules is less than 1 second")
	}
	n := int64(now.Sub(t1).Seconds())/interval + 1
	// Start one interval before the estimate and let the schedule find the
	// exact times (irregular schedules such as "30 6-16/4 * * 1-5").
	var recent time.Time
	from := t1.Add(time.Duration((n-2)*interval) * time.Second)
	for t := sched.Next(from); !t.After(now); t = sched.Next(t) {
		recent = t
	}
	m := fewMissed
	if n > maxMissedSchedules {
		m = manyMissed
	}
	if recent.IsZero() {
		return earliest, nil, m, nil
	}
	return earliest, &recent, m, nil
}

// nextScheduleTime is the start time to act on now: the most recent one
// since the last schedule time, within startingDeadlineSeconds; nil if
// there is none.
func nextScheduleTime(cj *batchv1.CronJob, now time.Time, sched cron.Schedule) (*time.Time, missed, error) {
	_, recent, m, err := mostRecentScheduleTime(cj, now, sched, true)
	if recent == nil || recent.After(now) {
		return nil, m, err
	}
	return recent, m, err
}

// nextScheduleTimeDuration is how long to wait from now until the next
// start time after the last one acted on (plus nextScheduleDelta).
func nextScheduleTimeDuration(cj *batchv1.CronJob, now time.Time, sched cron.Schedule) time.Duration {
	earliest, recent, m, err := mostRecentScheduleTime(cj, now, sched, false)
	switch {
	case err != nil:
		recent = &now
	case recent == nil && m == noneMissed:
		recent = &earliest
	case recent == nil:
		recent = &now
	}
	return sched.Next(*recent).Add(nextScheduleDelta).Sub(now)
}

// jobName is <cronjob>-<scheduled time in minutes since the epoch>: one
// name per start time, so a start time never gets two jobs.
func jobName(cj *batchv1.CronJob, scheduled time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, scheduled.Unix()/60)
}

// jobFromTemplate is the Job that cj runs for the start time scheduled:
// the template's labels, annotations and spec, the scheduled time in the
// batch.kubernetes.io/cronjob-scheduled-timestamp annotation (RFC 3339, in
// the CronJob's time zone) and cj as its controller.
func jobFromTemplate(cj *batchv1.CronJob, scheduled time.Time) (*batchv1.Job, error) {
	loc := time.UTC
	if cj.Spec.TimeZone != nil {
		l, err := time.LoadLocation(*cj.Spec.TimeZone)
		if err != nil {
			return nil, err
		}
		loc = l
	}
	annotations := maps.Clone(cj.Spec.JobTemplate.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[batchv1.CronJobScheduledTimestampAnnotation] = scheduled.In(loc).Format(time.RFC3339)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            jobName(cj, scheduled),
			Namespace:       cj.Namespace,
			Labels:          maps.Clone(cj.Spec.JobTemplate.Labels),
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, controllerKind)},
		},
	}
	cj.Spec.JobTemplate.Spec.DeepCopyInto(&job.Spec)
	return job, nil
}

// finished reports whether job is Complete or Failed, and which.
func finished(job *batchv1.Job) (bool, batchv1.JobConditionType) {
	if c := controller.FinishedCondition(job); c != nil {
		return true, c.Type
	}
	return false, ""
}

// olderFirst orders jobs by start time (jobs not started last), then name:
// the order in which history is removed.
func olderFirst(a, b *batchv1.Job) int {
	as, bs := a.Status.StartTime, b.Status.StartTime
	switch {
	case as == nil && bs != nil:
		return 1
	case as != nil && bs == nil:
		return -1
	case as != nil && !as.Equal(bs):
		if as.Before(bs) {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Name, b.Name)
}

// sortJobs sorts jobs olderFirst.
func sortJobs(jobs []*batchv1.Job) { slices.SortFunc(jobs, olderFirst) }
