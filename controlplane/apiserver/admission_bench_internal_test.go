package apiserver

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver/validation"
)

// BenchmarkPodAdmissionCaches is what a pod create's LimitRanger,
// Priority and ResourceQuota admission cost when they read their caches,
// in a namespace without limit ranges or quotas (the bench's):
//
//	go test -run '^$' -bench PodAdmissionCaches -benchmem ./controlplane/apiserver/
func BenchmarkPodAdmissionCaches(b *testing.B) {
	s := &Server{limitRanges: objCache[corev1.LimitRange]{keep: limitRangeOf},
		priorityClasses: objCache[schedulingv1.PriorityClass]{keep: priorityClassOf}, resourceQuotas: objCache[struct{}]{keep: anyQuota}}
	pcs := map[string]*schedulingv1.PriorityClass{}
	for _, pc := range validation.SystemPriorityClasses() {
		pcs[pc.Name] = pc
	}
	s.limitRanges.set(true, 1, map[string]*corev1.LimitRange{})
	s.priorityClasses.set(true, 1, pcs)
	s.resourceQuotas.set(true, 1, map[string]*struct{}{})
	ctx := context.Background()
	info := &reqInfo{res: &resource{namespaced: true}, namespace: "bench"}
	info.res.gvr.Resource = "pods"
	for b.Loop() {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
		lrs, err := s.podLimitRanges(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		admitLimitRanges(pod, lrs)
		if err := s.admitPriority(ctx, "p", pod); err != nil {
			b.Fatal(err)
		}
		if err := validateLimitRanges("p", pod, lrs); err != nil {
			b.Fatal(err)
		}
		if _, err := s.chargeQuotas(ctx, info, "p", pod, nil, false); err != nil {
			b.Fatal(err)
		}
	}
}
