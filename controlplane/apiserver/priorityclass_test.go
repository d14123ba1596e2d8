package apiserver_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPriorityAdmission: priority classes are served, and new pods get
// their class's priority, as with Kubernetes' Priority admission plugin.
func TestPriorityAdmission(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	pods := c.client.CoreV1().Pods("default")
	pcs := c.client.SchedulingV1().PriorityClasses()
	pod := func(name, class string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{PriorityClassName: class, Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}}}
	}
	wantPriority := func(p *corev1.Pod, err error, class string, priority int32, policy corev1.PreemptionPolicy) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.PriorityClassName != class || p.Spec.Priority == nil || *p.Spec.Priority != priority || p.Spec.PreemptionPolicy == nil || *p.Spec.PreemptionPolicy != policy {
			t.Errorf("pod %s: class %q priority %v policy %v, want %q %d %s", p.Name, p.Spec.PriorityClassName, p.Spec.Priority, p.Spec.PreemptionPolicy, class, priority, policy)
		}
	}
	forbidden := func(err error, want string) {
		t.Helper()
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Errorf("got %v, want 403 %q", err, want)
		}
	}

	// Without classes of its own: priority 0, or a system class's.
	p, err := pods.Create(ctx, pod("plain", ""), metav1.CreateOptions{})
	wantPriority(p, err, "", 0, corev1.PreemptLowerPriority)
	p, err = pods.Create(ctx, pod("critical", "system-node-critical"), metav1.CreateOptions{})
	wantPriority(p, err, "system-node-critical", 2000001000, corev1.PreemptLowerPriority)
	_, err = pods.Create(ctx, pod("typo", "hihg"), metav1.CreateOptions{})
	forbidden(err, `pods "typo" is forbidden: no PriorityClass with name hihg was found`)
	given := pod("given", "system-cluster-critical")
	given.Spec.Priority = new(int32(7))
	_, err = pods.Create(ctx, given, metav1.CreateOptions{})
	forbidden(err, `pods "given" is forbidden: the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 2000000000 from the given PriorityClass name`)

	// A class of one's own, and a global default.
	high, err := pcs.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000, PreemptionPolicy: new(corev1.PreemptNever)}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err = pods.Create(ctx, pod("high", "high"), metav1.CreateOptions{})
	wantPriority(p, err, "high", 1000, corev1.PreemptNever)
	if _, err := pcs.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "normal"}, Value: 100, GlobalDefault: true}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err = pods.Create(ctx, pod("defaulted", ""), metav1.CreateOptions{})
	wantPriority(p, err, "normal", 100, corev1.PreemptLowerPriority)
	_, err = pcs.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Value: 5, GlobalDefault: true}, metav1.CreateOptions{})
	forbidden(err, `priorityclasses.scheduling.k8s.io "other" is forbidden: PriorityClass normal is already marked as default. Only one default can exist`)
	high.GlobalDefault = true
	_, err = pcs.Update(ctx, high, metav1.UpdateOptions{})
	forbidden(err, `priorityclasses.scheduling.k8s.io "high" is forbidden: PriorityClass normal is already marked as default. Only one default can exist`)

	// Validation, as Kubernetes'.
	for name, pc := range map[string]*schedulingv1.PriorityClass{
		"too high":      {ObjectMeta: metav1.ObjectMeta{Name: "too-high"}, Value: 1000000001},
		"system prefix": {ObjectMeta: metav1.ObjectMeta{Name: "system-mine"}, Value: 1},
	} {
		if _, err := pcs.Create(ctx, pc, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
			t.Errorf("%s: %v, want 422", name, err)
		}
	}
	high, _ = pcs.Get(ctx, "high", metav1.GetOptions{})
	high.Value = 2000
	if _, err := pcs.Update(ctx, high, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("value changed: %v, want 422", err)
	}

	// A pod replaced without its priority keeps it.
	p, _ = pods.Get(ctx, "high", metav1.GetOptions{})
	p.Spec.Priority, p.Spec.PreemptionPolicy = nil, nil
	p.Labels = map[string]string{"replaced": "yes"}
	p, err = pods.Update(ctx, p, metav1.UpdateOptions{})
	wantPriority(p, err, "high", 1000, corev1.PreemptNever)

	// System classes stay.
	err = pcs.Delete(ctx, "system-node-critical", metav1.DeleteOptions{})
	forbidden(err, `priorityclasses.scheduling.k8s.io "system-node-critical" is forbidden: this is a system priority class and cannot be deleted`)
	if err := pcs.Delete(ctx, "normal", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err = pods.Create(ctx, pod("after", ""), metav1.CreateOptions{})
	wantPriority(p, err, "", 0, corev1.PreemptLowerPriority)
}
