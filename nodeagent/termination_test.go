package nodeagent

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// TestEvictedPodTerminalStatus: an evicted pod's last status before its
// deletion is Failed and keeps the DisruptionTarget condition the
// eviction gave it (the agent keeps conditions it does not own, as the
// kubelet), as a Job's pod failure policy needs to match it.
func TestEvictedPodTerminalStatus(t *testing.T) {
	admin := agentPods(t, nil)
	ctx := context.Background()
	pod, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ev"},
		Spec:       corev1.PodSpec{NodeName: "edge-1", Containers: []corev1.Container{{Name: "main", Image: fileImage(t, "examples/tiny/tiny.wasm")}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if pod, err = admin.CoreV1().Pods("default").Get(ctx, "ev", metav1.GetOptions{}); err == nil && pod.Status.Phase == corev1.PodRunning {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("not running: %v", err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	wch, err := admin.CoreV1().Pods("default").Watch(wctx, metav1.ListOptions{FieldSelector: "metadata.name=ev", ResourceVersion: pod.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer wch.Stop()
	if err := admin.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "ev", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	var last *corev1.Pod
	for ev := range wch.ResultChan() {
		if ev.Type == watch.Deleted {
			break
		}
		last = ev.Object.(*corev1.Pod)
	}
	if last == nil || last.Status.Phase != corev1.PodFailed {
		t.Fatalf("last status before the deletion: %+v", last)
	}
	found := false
	for _, c := range last.Status.Conditions {
		found = found || (c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == "EvictionByEvictionAPI")
	}
	if !found {
		t.Errorf("conditions %+v, want DisruptionTarget from the eviction", last.Status.Conditions)
	}
}
