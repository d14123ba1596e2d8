package apiserver_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestLimitRangerAdmission: new pods get their namespace's LimitRange
// defaults and are refused outside its bounds, as Kubernetes' LimitRanger
// admission plugin does; the limit range applies to the first pod
// created after it, and stops applying once deleted.
func TestLimitRangerAdmission(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	ns := "default"
	pods := c.client.CoreV1().Pods(ns)
	q := resource.MustParse
	res := func(kv ...string) corev1.ResourceList {
		l := corev1.ResourceList{}
		for i := 0; i < len(kv); i += 2 {
			l[corev1.ResourceName(kv[i])] = q(kv[i+1])
		}
		return l
	}
	pod := func(name string, containers ...corev1.ResourceRequirements) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}
		for i, r := range containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c" + string(rune('0'+i)), Image: "hello:v1", Resources: r})
		}
		return p
	}
	refused := func(p *corev1.Pod, want string) {
		t.Helper()
		_, err := pods.Create(ctx, p, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || err.Error() != `pods "`+p.Name+`" is forbidden: `+want {
			t.Errorf("create %s: %v, want 403 %q", p.Name, err, want)
		}
		if _, err := pods.Get(ctx, p.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("refused pod %s was stored: %v", p.Name, err)
		}
	}

	lr, err := c.client.CoreV1().LimitRanges(ns).Create(ctx, &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "edge"},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{
			{Type: corev1.LimitTypeContainer, Max: res("memory", "256Mi"), Min: res("memory", "4Mi"), Default: res("memory", "64Mi"), DefaultRequest: res("cpu", "50m"),
				MaxLimitRequestRatio: res("memory", "4")},
			{Type: corev1.LimitTypePod, Max: res("memory", "384Mi")},
		}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Kubernetes' defaults for a Container item: defaultRequest from
	// default (memory) and min.
	if d := lr.Spec.Limits[0].DefaultRequest; len(d) != 2 || !d.Memory().Equal(q("64Mi")) || !d.Cpu().Equal(q("50m")) {
		t.Errorf("defaultRequest %v, want cpu 50m and memory 64Mi", d)
	}

	// Defaults fill what a container leaves out, at once.
	got, err := pods.Create(ctx, pod("defaulted", corev1.ResourceRequirements{}, corev1.ResourceRequirements{Limits: res("memory", "128Mi")}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c0, c1 := got.Spec.Containers[0].Resources, got.Spec.Containers[1].Resources
	if !c0.Limits.Memory().Equal(q("64Mi")) || !c0.Requests.Memory().Equal(q("64Mi")) || !c0.Requests.Cpu().Equal(q("50m")) {
		t.Errorf("c0 resources %v", c0)
	}
	// c1's memory request came from its limit (API defaulting), before.
	if !c1.Limits.Memory().Equal(q("128Mi")) || !c1.Requests.Memory().Equal(q("128Mi")) || !c1.Requests.Cpu().Equal(q("50m")) {
		t.Errorf("c1 resources %v", c1)
	}
	if a := got.Annotations["kubernetes.io/limit-ranger"]; a != "LimitRanger plugin set: cpu, memory request for container c0; memory limit for container c0; cpu request for container c1" {
		t.Errorf("annotation %q", a)
	}
	if got.Status.QOSClass != corev1.PodQOSBurstable {
		t.Errorf("QoS class %q, want Burstable (from the defaults)", got.Status.QOSClass)
	}

	// A pod without resources is no longer BestEffort.
	if got, err := pods.Create(ctx, pod("plain", corev1.ResourceRequirements{}), metav1.CreateOptions{}); err != nil || got.Status.QOSClass != corev1.PodQOSBurstable {
		t.Errorf("plain pod: QoS class %q %v, want Burstable", got.Status.QOSClass, err)
	}

	refused(pod("too-big", corev1.ResourceRequirements{Limits: res("memory", "512Mi")}),
		"[maximum memory usage per Container is 256Mi, but limit is 512Mi, maximum memory usage per Pod is 384Mi, but limit is 512Mi]")
	refused(pod("too-small", corev1.ResourceRequirements{Requests: res("memory", "1Mi"), Limits: res("memory", "2Mi")}),
		"minimum memory usage per Container is 4Mi, but request is 1Mi")
	refused(pod("ratio", corev1.ResourceRequirements{Requests: res("memory", "16Mi"), Limits: res("memory", "128Mi")}),
		"memory max limit to request ratio per Container is 4, but provided ratio is 8.000000")
	refused(pod("pod-total", corev1.ResourceRequirements{Limits: res("memory", "200Mi")}, corev1.ResourceRequirements{Limits: res("memory", "200Mi")}),
		"maximum memory usage per Pod is 384Mi, but limit is 400Mi")

	// A change applies to the next pod.
	lr.Spec.Limits[1].Max = res("memory", "512Mi")
	if _, err := c.client.CoreV1().LimitRanges(ns).Update(ctx, lr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Create(ctx, pod("pod-total-2", corev1.ResourceRequirements{Limits: res("memory", "200Mi")}, corev1.ResourceRequirements{Limits: res("memory", "200Mi")}), metav1.CreateOptions{}); err != nil {
		t.Errorf("after raising the pod max: %v", err)
	}

	// Updates are not checked (containers' resources cannot change).
	got.Labels = map[string]string{"x": "y"}
	if _, err := pods.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Errorf("update: %v", err)
	}

	// Gone: the next pod is free again.
	if err := c.client.CoreV1().LimitRanges(ns).Delete(ctx, "edge", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err = pods.Create(ctx, pod("free", corev1.ResourceRequirements{Limits: res("memory", "512Mi")}), metav1.CreateOptions{})
	if err != nil || got.Annotations["kubernetes.io/limit-ranger"] != "" || got.Spec.Containers[0].Resources.Requests.Cpu().Sign() != 0 {
		t.Errorf("after the delete: %v %v", got.Annotations, err)
	}
	if got.Status.QOSClass != corev1.PodQOSBurstable {
		t.Errorf("QoS class %q, want Burstable", got.Status.QOSClass)
	}
}
