package nodeagent

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestActiveDeadline: a pod running past its activeDeadlineSeconds fails
// with DeadlineExceeded, as the kubelet's, and its container is stopped and
// not restarted (its policy Always notwithstanding).
func TestActiveDeadline(t *testing.T) {
	admin := agentPods(t, nil)
	ctx := context.Background()

	deadline, grace := int64(2), int64(1)
	if _, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "brief"},
		Spec: corev1.PodSpec{NodeName: "edge-1", ActiveDeadlineSeconds: &deadline, TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{Name: "main", Image: fileImage(t, "examples/tiny/tiny.wasm")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	get := func() *corev1.Pod {
		p, err := admin.CoreV1().Pods("default").Get(ctx, "brief", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for end := time.Now().Add(30 * time.Second); get().Status.Phase != corev1.PodRunning; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not running: %+v", get().Status)
		}
	}
	var p *corev1.Pod
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p = get()
		cs := p.Status.ContainerStatuses
		if p.Status.Phase == corev1.PodFailed && len(cs) == 1 && cs[0].State.Terminated != nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("not failed with its container stopped: %+v", p.Status)
		}
	}
	if p.Status.Reason != ReasonDeadlineExceeded || p.Status.Message != deadlineMessage {
		t.Errorf("reason %q message %q", p.Status.Reason, p.Status.Message)
	}
	if ran := p.Status.ContainerStatuses[0].State.Terminated.FinishedAt.Sub(p.Status.StartTime.Time); ran < 2*time.Second || ran > 10*time.Second {
		t.Errorf("stopped %v after the start, want about 2s", ran)
	}
	// The event is posted in the background.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=brief,reason=" + ReasonDeadlineExceeded})
		if err == nil && len(evs.Items) == 1 && evs.Items[0].Message == deadlineMessage {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("DeadlineExceeded events: %+v %v", evs, err)
		}
	}
	// It stays so: nothing restarts it.
	time.Sleep(time.Second)
	if p := get(); p.Status.Phase != corev1.PodFailed || p.Status.ContainerStatuses[0].RestartCount != 0 || p.Status.ContainerStatuses[0].State.Terminated == nil {
		t.Errorf("after a second: %+v", p.Status)
	}
}
