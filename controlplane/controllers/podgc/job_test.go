package podgc

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/job"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// startJobController runs the Job controller until the test ends.
func startJobController(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	factory := informers.NewSharedInformerFactory(cs, 0)
	ctrl := job.New(cs, factory, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx, 2) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("job controller: %v", err)
		}
		factory.Shutdown()
	})
}

func jobCondition(j *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if c := &j.Status.Conditions[i]; c.Type == typ && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// TestJobPodOnDeletedNode: Kubernetes' pod failure policy relies on the
// pod garbage collector for pods on deleted nodes. Marked Failed with
// DisruptionTarget, the pod of a job whose policy ignores disruptions is
// replaced without counting against backoffLimit 0; the pod of a job
// without a policy counts as failed and fails the job. Either way the
// Job controller removes its tracking finalizer and the pod goes.
func TestJobPodOnDeletedNode(t *testing.T) {
	cs, c, clk := startCollector(t, 0)
	startJobController(t, cs)
	ctx := t.Context()
	createNode(t, cs, "dev-7", corev1.ConditionTrue)

	newJob := func(name string, policy *batchv1.PodFailurePolicy) {
		j := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: batchv1.JobSpec{
				BackoffLimit:     new(int32(0)),
				PodFailurePolicy: policy,
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "work", Image: "worker:1"}},
				}},
			},
		}
		if _, err := cs.BatchV1().Jobs(ns).Create(ctx, j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	newJob("tolerant", &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
		Action:          batchv1.PodFailurePolicyActionIgnore,
		OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}},
	}}})
	newJob("strict", nil)

	// Play scheduler and agent: bind each job's pod to dev-7, Running.
	first := map[string]*corev1.Pod{}
	for _, name := range []string{"tolerant", "strict"} {
		testenv.Poll(t, "a pod of "+name, func() (bool, string) {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
			if err != nil || len(pods.Items) != 1 {
				return false, fmt.Sprintf("%v, %d pods", err, len(pods.Items))
			}
			first[name] = &pods.Items[0]
			return true, ""
		})
		p := first[name]
		if err := cs.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: ns},
			Target: corev1.ObjectReference{Kind: "Node", Name: "dev-7"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p, err := cs.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodRunning
		if first[name], err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	if err := cs.CoreV1().Nodes().Delete(ctx, "dev-7", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitQuarantined(t, c, "dev-7")
	clk.advance(quarantineTime)

	for _, p := range first {
		waitGone(t, cs, p.Name)
	}
	var j *batchv1.Job
	testenv.Poll(t, "strict failed", func() (bool, string) {
		var err error
		j, err = cs.BatchV1().Jobs(ns).Get(ctx, "strict", metav1.GetOptions{})
		return err == nil && jobCondition(j, batchv1.JobFailed) != nil, fmt.Sprintf("%v %+v", err, j)
	})
	if c := jobCondition(j, batchv1.JobFailed); c.Reason != batchv1.JobReasonBackoffLimitExceeded || j.Status.Failed != 1 {
		t.Errorf("strict: Failed %+v, status %+v", c, j.Status)
	}
	testenv.Poll(t, "tolerant's replacement", func() (bool, string) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=tolerant"})
		if err != nil || len(pods.Items) != 1 || pods.Items[0].UID == first["tolerant"].UID {
			return false, fmt.Sprintf("%v %+v", err, pods)
		}
		return true, ""
	})
	testenv.Poll(t, "tolerant's status", func() (bool, string) {
		var err error
		j, err = cs.BatchV1().Jobs(ns).Get(ctx, "tolerant", metav1.GetOptions{})
		return err == nil && j.Status.Active == 1, fmt.Sprintf("%v %+v", err, j.Status)
	})
	// The finalizer goes only after a counted failure is in the status.
	if u := j.Status.UncountedTerminatedPods; j.Status.Failed != 0 || (u != nil && len(u.Failed) != 0) ||
		jobCondition(j, batchv1.JobFailed) != nil || jobCondition(j, batchv1.JobFailureTarget) != nil {
		t.Errorf("tolerant counted the disrupted pod: %+v", j.Status)
	}
}
