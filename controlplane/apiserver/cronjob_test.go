package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const cronJobYAML = `apiVersion: batch/v1
kind: CronJob
metadata:
  name: upload
spec:
  schedule: "*/15 * * * *"
  timeZone: Europe/Berlin
  jobTemplate:
    metadata:
      labels: {app: upload}
    spec:
      template:
        spec:
          runtimeClassName: wasm
          restartPolicy: OnFailure
          containers:
          - name: main
            image: uploader:v1
`

// TestKubectlCronJobs: a CronJob is created from YAML, shown in tables,
// described and explained by the real kubectl, and `kubectl create job
// --from=cronjob/NAME` makes a Job of it that the CronJob controls.
func TestKubectlCronJobs(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	mustContain(t, c.kubectl(t, cronJobYAML, "create", "-f", "-"), "cronjob.batch/upload created")
	mustContain(t, c.kubectl(t, "", "api-resources", "--api-group=batch"), "cronjobs", "cj", "batch/v1", "CronJob")

	out := c.kubectl(t, "", "get", "cronjobs")
	if !strings.HasPrefix(out, "NAME     SCHEDULE       TIMEZONE        SUSPEND   ACTIVE   LAST SCHEDULE   AGE\n"+
		"upload   */15 * * * *   Europe/Berlin   False     0        <none>          ") {
		t.Fatalf("get cronjobs:\n%s", out)
	}
	mustContain(t, c.kubectl(t, "", "get", "cj", "-o", "wide"), "CONTAINERS", "IMAGES", "SELECTOR", "main", "uploader:v1", "<none>")
	mustContain(t, c.kubectl(t, "", "get", "all"), "cronjob.batch/upload")
	mustContain(t, c.kubectl(t, "", "describe", "cronjob", "upload"),
		"Schedule:", "*/15 * * * *", "Concurrency Policy:", "Allow", "Suspend:", "False",
		"Successful Job History Limit:  3", "Failed Job History Limit:      1", "uploader:v1")
	mustContain(t, c.kubectl(t, "", "explain", "cronjob.spec"), "concurrencyPolicy", "jobTemplate", "schedule", "timeZone")
	mustContain(t, c.kubectl(t, "", "explain", "cronjob.spec.jobTemplate.spec.template.spec.runtimeClassName"), "RuntimeClassName")

	cj, err := c.client.BatchV1().CronJobs("default").Get(ctx, "upload", metav1.GetOptions{})
	must(t, err)
	if cj.Generation != 1 || cj.Spec.ConcurrencyPolicy != batchv1.AllowConcurrent || *cj.Spec.SuccessfulJobsHistoryLimit != 3 ||
		cj.Spec.JobTemplate.Spec.Template.Spec.TerminationGracePeriodSeconds == nil {
		t.Fatalf("cronjob not defaulted: generation %d, spec %+v", cj.Generation, cj.Spec)
	}

	mustContain(t, c.kubectl(t, "", "create", "job", "manual-1", "--from=cronjob/upload"), "job.batch/manual-1 created")
	job, err := c.client.BatchV1().Jobs("default").Get(ctx, "manual-1", metav1.GetOptions{})
	must(t, err)
	ref := metav1.GetControllerOf(job)
	if ref == nil || ref.Kind != "CronJob" || ref.APIVersion != "batch/v1" || ref.Name != "upload" || ref.UID != cj.UID {
		t.Fatalf("job's controller: %+v", job.OwnerReferences)
	}
	if job.Annotations["cronjob.kubernetes.io/instantiate"] != "manual" || job.Labels["app"] != "upload" ||
		job.Spec.Template.Spec.Containers[0].Image != "uploader:v1" || job.Spec.Selector == nil {
		t.Fatalf("job from cronjob: %+v", job)
	}

	// Applied, client-side (a strategic merge patch) and server-side: a
	// spec change is a new generation.
	suspended := strings.Replace(cronJobYAML, "  timeZone: Europe/Berlin\n", "  timeZone: Europe/Berlin\n  suspend: true\n", 1)
	mustContain(t, c.kubectl(t, suspended, "apply", "-f", "-"), "cronjob.batch/upload configured")
	mustContain(t, c.kubectl(t, "", "get", "cj", "upload"), "True")
	hourly := strings.Replace(suspended, `"*/15 * * * *"`, `"@hourly"`, 1)
	mustContain(t, c.kubectl(t, hourly, "apply", "--server-side", "--force-conflicts", "-f", "-"), "cronjob.batch/upload serverside-applied")
	cj, err = c.client.BatchV1().CronJobs("default").Get(ctx, "upload", metav1.GetOptions{})
	must(t, err)
	if cj.Generation != 3 || cj.Spec.Schedule != "@hourly" || !*cj.Spec.Suspend {
		t.Fatalf("after apply: generation %d, spec %+v", cj.Generation, cj.Spec)
	}

	mustContain(t, c.kubectl(t, "", "create", "cronjob", "tick", "--image=hello:v1", "--schedule=*/5 * * * *"), "cronjob.batch/tick created")
	mustContain(t, c.kubectl(t, "", "patch", "cronjob", "tick", "-p", `{"spec":{"concurrencyPolicy":"Forbid"}}`), "cronjob.batch/tick patched")

	// Invalid ones are refused with the fields named.
	bad := strings.Replace(cronJobYAML, "name: upload", "name: bad", 1)
	bad = strings.Replace(bad, `"*/15 * * * *"`, `"*/15 * * *"`, 1)
	bad = strings.Replace(bad, "Europe/Berlin", "Europe/Atlantis", 1)
	out, err = c.kubectlErr(t, bad, "create", "-f", "-")
	if err == nil {
		t.Fatal("invalid cronjob created")
	}
	mustContain(t, out, `The CronJob "bad" is invalid`, "spec.schedule", "expected exactly 5 fields, found 4", "spec.timeZone", "unknown time zone Europe/Atlantis")
}

// TestCronJobGenerationAndStatus: the spec bumps the generation, status
// goes through /status only, and a CronJob's own status is not validated
// against its spec, as in Kubernetes.
func TestCronJobGenerationAndStatus(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	cjs := c.client.BatchV1().CronJobs("default")
	in := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 3 * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "main", Image: "hello:v1"}},
			}}}},
		},
		Status: batchv1.CronJobStatus{LastScheduleTime: &metav1.Time{}},
	}
	cj, err := cjs.Create(ctx, in, metav1.CreateOptions{})
	must(t, err)
	if cj.Generation != 1 || cj.Status.LastScheduleTime != nil {
		t.Fatalf("created: generation %d, status %+v", cj.Generation, cj.Status)
	}

	now := metav1.Now().Rfc3339Copy()
	cj.Status.LastScheduleTime = &now
	cj.Status.Active = []corev1.ObjectReference{{Kind: "Job", Namespace: "default", Name: "nightly-1", APIVersion: "batch/v1"}}
	cj.Spec.Schedule = "0 4 * * *" // ignored by /status
	cj, err = cjs.UpdateStatus(ctx, cj, metav1.UpdateOptions{})
	must(t, err)
	if cj.Generation != 1 || cj.Spec.Schedule != "0 3 * * *" || len(cj.Status.Active) != 1 || !cj.Status.LastScheduleTime.Equal(&now) {
		t.Fatalf("after status update: generation %d, schedule %q, status %+v", cj.Generation, cj.Spec.Schedule, cj.Status)
	}

	suspend := true
	cj.Spec.Suspend = &suspend
	cj.Status = batchv1.CronJobStatus{} // ignored by the object's update
	cj, err = cjs.Update(ctx, cj, metav1.UpdateOptions{})
	must(t, err)
	if cj.Generation != 2 || !*cj.Spec.Suspend || len(cj.Status.Active) != 1 {
		t.Fatalf("after spec update: generation %d, suspend %v, status %+v", cj.Generation, *cj.Spec.Suspend, cj.Status)
	}
	cj.Labels = map[string]string{"team": "a"}
	cj, err = cjs.Update(ctx, cj, metav1.UpdateOptions{})
	must(t, err)
	if cj.Generation != 2 {
		t.Fatalf("a label bumped the generation to %d", cj.Generation)
	}
}

// TestInvalidCronJobsAreRefused: 422 with the causes kube-apiserver gives,
// and nothing written.
func TestInvalidCronJobsAreRefused(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	path := "/apis/batch/v1/namespaces/default/cronjobs"
	template := `"jobTemplate":{"spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"hello:v1"}]}}}}`
	for _, tc := range []struct {
		name, spec string
		causes     []string
	}{
		{"schedule with a seconds field", `"schedule":"0 * * * * *",` + template, []string{"spec.schedule"}},
		{"schedule with TZ", `"schedule":"TZ=UTC 0 * * * *",` + template, []string{"spec.schedule"}},
		{"schedule with CRON_TZ", `"schedule":"CRON_TZ=Europe/Paris 0 * * * *",` + template, []string{"spec.schedule"}},
		{"unknown time zone", `"schedule":"@daily","timeZone":"Moon/Tranquility",` + template, []string{"spec.timeZone"}},
		{"no schedule, bad policy", `"concurrencyPolicy":"Never",` + template, []string{"spec.schedule", "spec.concurrencyPolicy"}},
		{"job template with a selector", `"schedule":"@daily","jobTemplate":{"spec":{"selector":{"matchLabels":{"a":"b"}},` +
			`"template":{"metadata":{"labels":{"a":"b"}},"spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"hello:v1"}]}}}}`,
			[]string{"spec.jobTemplate.spec.selector"}},
		{"job template restarting always", `"schedule":"@daily","jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"hello:v1"}]}}}}`,
			[]string{"spec.jobTemplate.spec.template.spec.restartPolicy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"c"},"spec":{` + tc.spec + `}}`
			st := rejected(t, c, hc, http.MethodPost, path, "application/json", strings.NewReader(body), nil,
				http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
			fs := causeFields(st)
			for _, f := range tc.causes {
				if !slices.Contains(fs, f) {
					t.Errorf("causes %v lack %s: %s", fs, f, st.Message)
				}
			}
		})
	}
	t.Run("name longer than 52", func(t *testing.T) {
		body := `{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"` + strings.Repeat("n", 53) + `"},"spec":{"schedule":"@daily",` + template + `}}`
		st := rejected(t, c, hc, http.MethodPost, path, "application/json", strings.NewReader(body), nil,
			http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
		if !strings.Contains(st.Message, "must be no more than 52 characters") {
			t.Errorf("message: %s", st.Message)
		}
	})
	t.Run("update to an invalid schedule", func(t *testing.T) {
		body := `{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"ok"},"spec":{"schedule":"@daily",` + template + `}}`
		code, b := rawDo(t, c, hc, http.MethodPost, path, "application/json", strings.NewReader(body), nil)
		if code != http.StatusCreated {
			t.Fatalf("create: %d %s", code, b)
		}
		var cj batchv1.CronJob
		must(t, json.Unmarshal(b, &cj))
		cj.Spec.Schedule = "@fortnightly"
		nb, err := json.Marshal(&cj)
		must(t, err)
		st := rejected(t, c, hc, http.MethodPut, path+"/ok", "application/json", strings.NewReader(string(nb)), nil,
			http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
		if fs := causeFields(st); !slices.Contains(fs, "spec.schedule") {
			t.Errorf("causes %v lack spec.schedule", fs)
		}
	})
}
