package quota

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestUsage(t *testing.T) {
	now := time.Now()
	res := func(kv ...string) corev1.ResourceList {
		l := corev1.ResourceList{}
		for i := 0; i < len(kv); i += 2 {
			l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
		}
		return l
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		// The larger of an init container and the containers' sum, plus
		// the overhead, as the scheduler counts.
		InitContainers: []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{Requests: res("cpu", "1")}}},
		Containers: []corev1.Container{
			{Name: "a", Resources: corev1.ResourceRequirements{Requests: res("cpu", "200m", "memory", "64Mi", "example.com/gpu", "1"), Limits: res("memory", "128Mi")}},
			{Name: "b", Resources: corev1.ResourceRequirements{Requests: res("cpu", "300m")}},
		},
		Overhead: res("memory", "16Mi"),
	}}
	want := res("count/pods", "1", "pods", "1", "cpu", "1", "requests.cpu", "1", "memory", "80Mi", "requests.memory", "80Mi",
		"limits.memory", "144Mi", "requests.example.com/gpu", "1")
	if got := Usage(corev1.Resource("pods"), pod, now); !Equal(got, want) {
		t.Errorf("pod usage %s, want %s", String(got), String(want))
	}
	pod.Status.Phase = corev1.PodSucceeded
	if got := Usage(corev1.Resource("pods"), pod, now); !Equal(got, res("count/pods", "1")) {
		t.Errorf("ended pod usage %s", String(got))
	}
	pod.Status.Phase = corev1.PodRunning
	pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds = &metav1.Time{Time: now.Add(-time.Minute)}, new(int64(30))
	if Counted(pod, now) {
		t.Error("a pod past its deletion grace period counts")
	}

	svc := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}, {Port: 443}}}}
	if got := Usage(corev1.Resource("services"), svc, now); !Equal(got, res("count/services", "1", "services", "1", "services.loadbalancers", "1", "services.nodeports", "2")) {
		t.Errorf("service usage %s", String(got))
	}
	if got := Usage(schema.GroupResource{Group: "apps", Resource: "deployments"}, nil, now); !Equal(got, res("count/deployments.apps", "1")) {
		t.Errorf("deployment usage %s", String(got))
	}
	if gr, ok := ParseCountName("count/deployments.apps"); !ok || gr != (schema.GroupResource{Group: "apps", Resource: "deployments"}) {
		t.Errorf("ParseCountName: %v %v", gr, ok)
	}
}

func TestInScope(t *testing.T) {
	q := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{ScopeSelector: &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{
		{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn, Values: []string{"high"}},
	}}, Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotBestEffort}}}
	burstable := corev1.Container{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}
	for _, tc := range []struct {
		class string
		c     corev1.Container
		want  bool
	}{{"high", burstable, true}, {"low", burstable, false}, {"high", corev1.Container{}, false}} {
		p := &corev1.Pod{Spec: corev1.PodSpec{PriorityClassName: tc.class, Containers: []corev1.Container{tc.c}}}
		if got := InScope(q, p); got != tc.want {
			t.Errorf("class %q, requests %v: in scope %v, want %v", tc.class, tc.c.Resources.Requests, got, tc.want)
		}
	}
	none := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{ScopeSelector: &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{
		{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpDoesNotExist},
	}}}}
	if !InScope(none, &corev1.Pod{}) || InScope(none, &corev1.Pod{Spec: corev1.PodSpec{PriorityClassName: "high"}}) {
		t.Error("DoesNotExist on the priority class: a pod without one must be in scope, one with one not")
	}
	if InScope(q, &corev1.Service{}) {
		t.Error("a scoped quota counts a service")
	}
}
