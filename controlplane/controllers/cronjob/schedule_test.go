package cronjob

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func testCronJob(schedule string, created string) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "upload", Namespace: "default", UID: "cj-uid", CreationTimestamp: metav1.NewTime(date(created))},
		Spec: batchv1.CronJobSpec{
			Schedule: schedule,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "upload"}, Annotations: map[string]string{"note": "x"}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "main", Image: "uploader:v1"}},
				}}},
			},
		},
	}
}

func TestNextScheduleTime(t *testing.T) {
	for _, tc := range []struct {
		name     string
		schedule string
		tz       *string
		created  string
		last     string // status.lastScheduleTime
		deadline *int64
		now      string
		want     string // "" for none
		missed   missed
	}{
		{name: "before the first", schedule: "*/5 * * * *", created: "2026-03-01T10:01:00Z", now: "2026-03-01T10:04:59Z"},
		{name: "at the first", schedule: "*/5 * * * *", created: "2026-03-01T10:01:00Z", now: "2026-03-01T10:05:00Z", want: "2026-03-01T10:05:00Z"},
		{name: "after the first", schedule: "*/5 * * * *", created: "2026-03-01T10:01:00Z", now: "2026-03-01T10:07:00Z", want: "2026-03-01T10:05:00Z"},
		{name: "last acted on", schedule: "*/5 * * * *", created: "2026-03-01T10:01:00Z", last: "2026-03-01T10:05:00Z", now: "2026-03-01T10:07:00Z"},
		{name: "a few missed: the most recent", schedule: "*/5 * * * *", created: "2026-03-01T10:01:00Z", now: "2026-03-01T10:31:00Z",
			want: "2026-03-01T10:30:00Z", missed: fewMissed},
		{name: "many missed: still the most recent", schedule: "* * * * *", created: "2026-03-01T10:00:00Z", now: "2026-03-01T13:00:30Z",
			want: "2026-03-01T13:00:00Z", missed: manyMissed},
		{name: "101 missed is many", schedule: "* * * * *", created: "2026-03-01T10:00:00Z", now: "2026-03-01T11:41:00Z",
			want: "2026-03-01T11:41:00Z", missed: manyMissed},
		{name: "100 missed is few", schedule: "* * * * *", created: "2026-03-01T10:00:00Z", now: "2026-03-01T11:40:00Z",
			want: "2026-03-01T11:40:00Z", missed: fewMissed},
		{name: "deadline limits the count", schedule: "* * * * *", created: "2026-03-01T10:00:00Z", deadline: ptr.To[int64](200), now: "2026-03-01T13:00:30Z",
			want: "2026-03-01T13:00:00Z", missed: fewMissed},
		{name: "deadline passed for all", schedule: "0 * * * *", created: "2026-03-01T10:00:00Z", deadline: ptr.To[int64](60), now: "2026-03-01T11:05:00Z"},
		{name: "time zone", schedule: "0 9 * * *", tz: ptr.To("Asia/Kolkata"), created: "2026-03-01T00:00:00Z", now: "2026-03-01T03:30:00Z",
			want: "2026-03-01T03:30:00Z"},
		{name: "time zone not yet", schedule: "0 9 * * *", tz: ptr.To("Asia/Kolkata"), created: "2026-03-01T00:00:00Z", now: "2026-03-01T03:29:59Z"},
		{name: "irregular schedule", schedule: "30 6-16/4 * * 1-5", created: "2026-03-02T00:00:00Z", now: "2026-03-04T15:00:00Z",
			want: "2026-03-04T14:30:00Z", missed: fewMissed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cj := testCronJob(tc.schedule, tc.created)
			cj.Spec.TimeZone = tc.tz
			cj.Spec.StartingDeadlineSeconds = tc.deadline
			if tc.last != "" {
				cj.Status.LastScheduleTime = ptr.To(metav1.NewTime(date(tc.last)))
			}
			sched, _, err := parseSchedule(cj)
			if err != nil {
				t.Fatal(err)
			}
			got, m, err := nextScheduleTime(cj, date(tc.now), sched)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("got %s, want none", got)
			case tc.want != "" && (got == nil || !got.Equal(date(tc.want))):
				t.Errorf("got %v, want %s", got, tc.want)
			}
			if got != nil && m != tc.missed {
				t.Errorf("missed %d, want %d", m, tc.missed)
			}
		})
	}
}

func TestNextScheduleTimeDuration(t *testing.T) {
	cj := testCronJob("*/5 * * * *", "2026-03-01T10:01:00Z")
	sched, _, _ := parseSchedule(cj)
	if d := nextScheduleTimeDuration(cj, date("2026-03-01T10:02:00Z"), sched); d != 3*time.Minute+nextScheduleDelta {
		t.Errorf("before the first: %s", d)
	}
	cj.Status.LastScheduleTime = ptr.To(metav1.NewTime(date("2026-03-01T10:05:00Z")))
	if d := nextScheduleTimeDuration(cj, date("2026-03-01T10:05:01Z"), sched); d != 4*time.Minute+59*time.Second+nextScheduleDelta {
		t.Errorf("after acting on one: %s", d)
	}
	// Missed ones (a long outage): the next after now, not after the last.
	if d := nextScheduleTimeDuration(cj, date("2026-03-01T12:01:00Z"), sched); d != 4*time.Minute+nextScheduleDelta {
		t.Errorf("after an outage: %s", d)
	}
	bogus := testCronJob("0 0 31 2 *", "2026-03-01T10:01:00Z")
	sched, _, err := parseSchedule(bogus)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := nextScheduleTime(bogus, date("2030-03-01T10:01:00Z"), sched); err == nil {
		t.Error("31 February: no error")
	}
}

func TestParseScheduleTimeZones(t *testing.T) {
	cj := testCronJob("CRON_TZ=Asia/Tokyo 0 9 * * *", "2026-03-01T00:00:00Z")
	sched, inSchedule, err := parseSchedule(cj)
	if err != nil || !inSchedule {
		t.Fatalf("TZ in schedule: %v %v", inSchedule, err)
	}
	if got := sched.Next(date("2026-03-01T00:00:00Z")); !got.Equal(date("2026-03-02T00:00:00Z")) {
		t.Errorf("CRON_TZ=Asia/Tokyo 09:00: %s", got)
	}
	cj = testCronJob("0 9 * * *", "2026-03-01T00:00:00Z")
	cj.Spec.TimeZone = ptr.To("Mars/Base")
	if _, _, err := parseSchedule(cj); err == nil {
		t.Error("unknown time zone parsed")
	}
}

func TestJobFromTemplate(t *testing.T) {
	cj := testCronJob("0 9 * * *", "2026-03-01T00:00:00Z")
	cj.Spec.TimeZone = ptr.To("Asia/Kolkata")
	at := date("2026-03-01T03:30:00Z")
	job, err := jobFromTemplate(cj, at)
	if err != nil {
		t.Fatal(err)
	}
	if want := "upload-29538930"; job.Name != want || at.Unix() != 29538930*60 {
		t.Errorf("name %s, want %s", job.Name, want)
	}
	if got := job.Annotations[batchv1.CronJobScheduledTimestampAnnotation]; got != "2026-03-01T09:00:00+05:30" {
		t.Errorf("scheduled timestamp %q", got)
	}
	if job.Annotations["note"] != "x" || job.Labels["app"] != "upload" || job.Namespace != "default" {
		t.Errorf("metadata %+v", job.ObjectMeta)
	}
	ref := metav1.GetControllerOf(job)
	if ref == nil || ref.Kind != "CronJob" || ref.APIVersion != "batch/v1" || ref.UID != "cj-uid" || !*ref.BlockOwnerDeletion {
		t.Errorf("controller %+v", ref)
	}
	job.Spec.Template.Spec.Containers[0].Image = "changed"
	if cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image != "uploader:v1" {
		t.Error("job spec shares the template")
	}
	cj.Spec.TimeZone = nil
	job, _ = jobFromTemplate(cj, at)
	if got := job.Annotations[batchv1.CronJobScheduledTimestampAnnotation]; got != "2026-03-01T03:30:00Z" {
		t.Errorf("scheduled timestamp without a time zone %q", got)
	}
}

func TestOlderFirst(t *testing.T) {
	job := func(name, start string) *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if start != "" {
			j.Status.StartTime = ptr.To(metav1.NewTime(date(start)))
		}
		return j
	}
	jobs := []*batchv1.Job{
		job("d", ""), job("c", "2026-03-01T10:02:00Z"), job("b", "2026-03-01T10:01:00Z"), job("a", "2026-03-01T10:02:00Z"), job("e", ""),
	}
	sortJobs(jobs)
	var names string
	for _, j := range jobs {
		names += j.Name
	}
	if names != "bacde" {
		t.Errorf("order %s", names)
	}
}
