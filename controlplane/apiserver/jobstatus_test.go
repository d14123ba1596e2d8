package apiserver_test

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestJobStatusWritesAreValidated: as kube-apiserver, a write of a Job's
// /status is validated (counts, a finished job's consistency), and one
// refused leaves the stored status as it was.
func TestJobStatusWritesAreValidated(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	jobs := c.client.BatchV1().Jobs(testNS)
	job, err := jobs.Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "j"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}}}},
	}, metav1.CreateOptions{})
	must(t, err)
	now := metav1.Now()
	job.Status.StartTime, job.Status.Active = &now, 1
	job, err = jobs.UpdateStatus(ctx, job, metav1.UpdateOptions{})
	must(t, err)

	bad := job.DeepCopy()
	bad.Status.Active = -1
	_, err = jobs.UpdateStatus(ctx, bad, metav1.UpdateOptions{})
	wantInvalid(t, "a negative count", err, "status.active", "must be greater than or equal to 0")
	bad = job.DeepCopy()
	bad.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}, {Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue}}
	bad.Status.CompletionTime = &now // and still one active pod
	_, err = jobs.UpdateStatus(ctx, bad, metav1.UpdateOptions{})
	wantInvalid(t, "complete with an active pod", err, "status.active", "active>0 is invalid for finished job")
	if got, err := jobs.Get(ctx, "j", metav1.GetOptions{}); err != nil || got.Status.Active != 1 || len(got.Status.Conditions) != 0 || got.ResourceVersion != job.ResourceVersion {
		t.Fatalf("after refused status writes: %+v %v", got.Status, err)
	}

	// Finished as the controller finishes it, it stays finished.
	done := job.DeepCopy()
	done.Status.Conditions = bad.Status.Conditions
	done.Status.Active, done.Status.Succeeded, done.Status.CompletionTime = 0, 1, &now
	done, err = jobs.UpdateStatus(ctx, done, metav1.UpdateOptions{})
	must(t, err)
	done.Status.Conditions = nil
	done.Status.CompletionTime = nil
	_, err = jobs.UpdateStatus(ctx, done, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("a finished job's conditions dropped: %v, want 422", err)
	}
}
