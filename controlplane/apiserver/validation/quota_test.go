package validation

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
)

func testResourceQuota() *corev1.ResourceQuota {
	return &corev1.ResourceQuota{
		ObjectMeta: testMeta("compute"),
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			corev1.ResourcePods:        resource.MustParse("10"),
			corev1.ResourceRequestsCPU: resource.MustParse("2"),
			"count/deployments.apps":   resource.MustParse("5"),
		}},
	}
}

func testLimitRange() *corev1.LimitRange {
	return &corev1.LimitRange{
		ObjectMeta: testMeta("limits"),
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type:           corev1.LimitTypeContainer,
			Min:            corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
			Max:            corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
			Default:        corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
			DefaultRequest: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
		}}},
	}
}

func testServiceAccount() *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: testMeta("builder")}
}

func TestQuotaKindsValidMinimalObjects(t *testing.T) {
	for _, obj := range []runtime.Object{testResourceQuota(), testLimitRange(), testServiceAccount()} {
		t.Run(typeName(obj), func(t *testing.T) {
			Default(obj)
			if errs := ValidateCreate(obj); errs != nil {
				t.Fatalf("ValidateCreate: %v", errs)
			}
			old := obj.DeepCopyObject()
			stamp(old)
			if errs := ValidateUpdate(old.DeepCopyObject(), old); errs != nil {
				t.Fatalf("ValidateUpdate without changes: %v", errs)
			}
		})
	}
}

func setHard(q *corev1.ResourceQuota, name corev1.ResourceName, v string) {
	q.Spec.Hard[name] = resource.MustParse(v)
}

func TestValidateResourceQuota(t *testing.T) {
	runCreateCases(t, testResourceQuota, []createCase[*corev1.ResourceQuota]{
		{name: "name", mutate: func(q *corev1.ResourceQuota) { q.Name = "Compute_Quota" }, want: []want{invalid("metadata.name")}},
		{name: "negative pods", mutate: func(q *corev1.ResourceQuota) { setHard(q, corev1.ResourcePods, "-1") }, want: []want{invalid("spec.hard[pods]")}},
		{name: "negative memory", mutate: func(q *corev1.ResourceQuota) { setHard(q, corev1.ResourceLimitsMemory, "-1Gi") }, want: []want{invalid("spec.hard[limits.memory]")}},
		{name: "fractional pods", mutate: func(q *corev1.ResourceQuota) { setHard(q, corev1.ResourcePods, "1500m") }, want: []want{invalid("spec.hard[pods]")}},
		{name: "fractional extended resource", mutate: func(q *corev1.ResourceQuota) { setHard(q, "example.com/gpu", "500m") }, want: []want{invalid("spec.hard[example.com/gpu]")}},
		{name: "fractional cpu", mutate: func(q *corev1.ResourceQuota) { setHard(q, corev1.ResourceRequestsCPU, "1500m") }},
		{name: "unknown unprefixed resource", mutate: func(q *corev1.ResourceQuota) { setHard(q, "gpus", "1") }, want: []want{invalid("spec.hard[gpus]")}},
		{name: "storage is no quota resource", mutate: func(q *corev1.ResourceQuota) { setHard(q, corev1.ResourceStorage, "1Gi") }, want: []want{invalid("spec.hard[storage]")}},
		{name: "hugepages", mutate: func(q *corev1.ResourceQuota) { setHard(q, "requests.hugepages-2Mi", "1Gi") }},
		{name: "object counts", mutate: func(q *corev1.ResourceQuota) { setHard(q, "count/jobs.batch", "3") }},
		{name: "negative status used", mutate: func(q *corev1.ResourceQuota) {
			q.Status.Used = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("-2")}
		}, want: []want{invalid("status.used[pods]")}},
		{name: "unknown scope", mutate: func(q *corev1.ResourceQuota) { q.Spec.Scopes = []corev1.ResourceQuotaScope{"Sometimes"} }, want: []want{invalid("spec.scopes")}},
		{name: "conflicting scopes", mutate: func(q *corev1.ResourceQuota) {
			q.Spec.Hard = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}
			q.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating}
		}, want: []want{invalid("spec.scopes")}},
		{name: "scope that fits", mutate: func(q *corev1.ResourceQuota) {
			q.Spec.Hard = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1"), corev1.ResourceRequestsCPU: resource.MustParse("1")}
			q.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotBestEffort}
		}},
		{name: "BestEffort scope only limits pods", mutate: func(q *corev1.ResourceQuota) {
			q.Spec.Hard = corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("1")}
			q.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}
		}, want: []want{invalid("spec.scopes")}},
		{name: "scope selector", mutate: func(q *corev1.ResourceQuota) {
			q.Spec.Hard = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}
			q.Spec.ScopeSelector = &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{
				{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn, Values: []string{"high"}},
			}}
		}},
		{name: "scope selector without values", mutate: func(q *corev1.ResourceQuota) {
			q.Spec.Hard = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}
			q.Spec.ScopeSelector = &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{
				{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn},
			}}
		}, want: []want{required("spec.scopeSelector.matchExpressions.values")}},
		{name: "scope selector operator", mutate: func(q *corev1.ResourceQuota) {
			q.Spec.Hard = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}
			q.Spec.ScopeSelector = &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{
				{ScopeName: corev1.ResourceQuotaScopeTerminating, Operator: corev1.ScopeSelectorOpIn, Values: []string{"x"}},
			}}
		}, want: []want{invalid("spec.scopeSelector.matchExpressions.operator")}},
		{name: "scope selector scope", mutate: func(q *corev1.ResourceQuota) {
			q.Spec.Hard = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}
			q.Spec.ScopeSelector = &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{
				{ScopeName: "Sometimes", Operator: corev1.ScopeSelectorOpExists},
			}}
		}, want: []want{invalid("spec.scopeSelector.matchExpressions.scopeName")}},
	})
}

func TestResourceQuotaMessagesReadLikeKubernetes(t *testing.T) {
	q := testResourceQuota()
	setHard(q, corev1.ResourcePods, "-1")
	Default(q)
	errs := ValidateCreate(q)
	if len(errs) != 1 || errs[0].Error() != `spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0` {
		t.Errorf("got %v", errs)
	}
}

func TestValidateResourceQuotaUpdate(t *testing.T) {
	runUpdateCases(t, stored(testResourceQuota), []updateCase[*corev1.ResourceQuota]{
		{name: "raise a limit", mutate: func(q *corev1.ResourceQuota) { setHard(q, corev1.ResourcePods, "20") }},
		{name: "negative limit", mutate: func(q *corev1.ResourceQuota) { setHard(q, corev1.ResourcePods, "-1") }, want: []want{invalid("spec.hard[pods]")}},
		{name: "scopes are immutable", mutate: func(q *corev1.ResourceQuota) {
			q.Spec.Hard = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}
			q.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}
		}, want: []want{invalid("spec.scopes")}},
	})
}

func setLimit(lr *corev1.LimitRange, list string, name corev1.ResourceName, v string) {
	item := &lr.Spec.Limits[0]
	var l *corev1.ResourceList
	switch list {
	case "min":
		l = &item.Min
	case "max":
		l = &item.Max
	case "default":
		l = &item.Default
	case "defaultRequest":
		l = &item.DefaultRequest
	case "maxLimitRequestRatio":
		l = &item.MaxLimitRequestRatio
	}
	if *l == nil {
		*l = corev1.ResourceList{}
	}
	(*l)[name] = resource.MustParse(v)
}

func TestValidateLimitRange(t *testing.T) {
	cpu := corev1.ResourceCPU
	runCreateCases(t, testLimitRange, []createCase[*corev1.LimitRange]{
		{name: "name", mutate: func(lr *corev1.LimitRange) { lr.Name = "Limits!" }, want: []want{invalid("metadata.name")}},
		// Defaulted from max (default) and default (defaultRequest), both
		// below min then, as in Kubernetes.
		{name: "min above max", mutate: func(lr *corev1.LimitRange) {
			lr.Spec.Limits[0].Default, lr.Spec.Limits[0].DefaultRequest = nil, nil
			setLimit(lr, "min", cpu, "3")
		}, want: []want{invalid("spec.limits[0].min[cpu]"), invalid("spec.limits[0].defaultRequest[cpu]"), invalid("spec.limits[0].default[cpu]")}},
		{name: "default above max", mutate: func(lr *corev1.LimitRange) { setLimit(lr, "default", cpu, "4") }, want: []want{invalid("spec.limits[0].default[cpu]")}},
		{name: "default below min", mutate: func(lr *corev1.LimitRange) { setLimit(lr, "default", cpu, "50m") }, want: []want{
			invalid("spec.limits[0].default[cpu]"), invalid("spec.limits[0].defaultRequest[cpu]"),
		}},
		{name: "defaultRequest above default", mutate: func(lr *corev1.LimitRange) { setLimit(lr, "defaultRequest", cpu, "1") }, want: []want{invalid("spec.limits[0].defaultRequest[cpu]")}},
		{name: "defaultRequest below min", mutate: func(lr *corev1.LimitRange) { setLimit(lr, "defaultRequest", cpu, "10m") }, want: []want{invalid("spec.limits[0].defaultRequest[cpu]")}},
		{name: "defaultRequest above max", mutate: func(lr *corev1.LimitRange) {
			lr.Spec.Limits[0].Default = nil
			setLimit(lr, "defaultRequest", cpu, "3")
		}, want: []want{invalid("spec.limits[0].defaultRequest[cpu]")}},
		{name: "ratio below 1", mutate: func(lr *corev1.LimitRange) { setLimit(lr, "maxLimitRequestRatio", cpu, "500m") }, want: []want{invalid("spec.limits[0].maxLimitRequestRatio[cpu]")}},
		{name: "ratio within max/min", mutate: func(lr *corev1.LimitRange) { setLimit(lr, "maxLimitRequestRatio", cpu, "20") }},
		{name: "ratio above max/min", mutate: func(lr *corev1.LimitRange) { setLimit(lr, "maxLimitRequestRatio", cpu, "21") }, want: []want{invalid("spec.limits[0].maxLimitRequestRatio[cpu]")}},
		{name: "unknown type", mutate: func(lr *corev1.LimitRange) { lr.Spec.Limits[0].Type = "Node" }, want: []want{invalid("spec.limits[0].type")}},
		{name: "duplicate type", mutate: func(lr *corev1.LimitRange) {
			lr.Spec.Limits = append(lr.Spec.Limits, corev1.LimitRangeItem{Type: corev1.LimitTypeContainer})
		}, want: []want{duplicate("spec.limits[1].type")}},
		{name: "container resource name", mutate: func(lr *corev1.LimitRange) { setLimit(lr, "max", "pods", "3") }, want: []want{
			invalid("spec.limits[0].max[pods]"), invalid("spec.limits[0].default[pods]"), invalid("spec.limits[0].defaultRequest[pods]"),
		}},
		{name: "pod defaults forbidden", mutate: func(lr *corev1.LimitRange) { lr.Spec.Limits[0].Type = corev1.LimitTypePod }, want: []want{
			forbidden("spec.limits[0].default"), forbidden("spec.limits[0].defaultRequest"),
		}},
		{name: "claim needs storage bounds", mutate: func(lr *corev1.LimitRange) {
			lr.Spec.Limits[0] = corev1.LimitRangeItem{Type: corev1.LimitTypePersistentVolumeClaim}
		}, want: []want{required("spec.limits[0].limits")}},
		{name: "claim storage bounds", mutate: func(lr *corev1.LimitRange) {
			lr.Spec.Limits[0] = corev1.LimitRangeItem{Type: corev1.LimitTypePersistentVolumeClaim, Max: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}}
		}},
		{name: "extended resource defaults must match", mutate: func(lr *corev1.LimitRange) {
			setLimit(lr, "default", "example.com/gpu", "2")
			setLimit(lr, "defaultRequest", "example.com/gpu", "1")
		}, want: []want{invalid("spec.limits[0].defaultRequest[example.com/gpu]")}},
	})
}

func TestLimitRangeMessagesReadLikeKubernetes(t *testing.T) {
	lr := testLimitRange()
	lr.Spec.Limits[0].Default, lr.Spec.Limits[0].DefaultRequest = nil, nil
	setLimit(lr, "min", corev1.ResourceCPU, "3")
	Default(lr)
	errs := ValidateCreate(lr)
	want := []string{
		"spec.limits[0].min[cpu]: Invalid value: \"3\": min value 3 is greater than max value 2",
		// Defaulted from max and default, as in Kubernetes.
		"spec.limits[0].defaultRequest[cpu]: Invalid value: \"2\": min value 3 is greater than default request value 2",
		"spec.limits[0].default[cpu]: Invalid value: \"3\": min value 3 is greater than default value 2",
	}
	if len(errs) != len(want) {
		t.Fatalf("got %v", errs)
	}
	for i, e := range errs {
		if e.Error() != want[i] {
			t.Errorf("error %d: %s, want %s", i, e.Error(), want[i])
		}
	}
}

func TestValidateLimitRangeUpdate(t *testing.T) {
	runUpdateCases(t, stored(testLimitRange), []updateCase[*corev1.LimitRange]{
		{name: "raise max", mutate: func(lr *corev1.LimitRange) { setLimit(lr, "max", corev1.ResourceCPU, "4") }},
		{name: "min above max", mutate: func(lr *corev1.LimitRange) { setLimit(lr, "min", corev1.ResourceCPU, "3") }, want: []want{
			invalid("spec.limits[0].min[cpu]"), invalid("spec.limits[0].defaultRequest[cpu]"), invalid("spec.limits[0].default[cpu]"),
		}},
	})
}

func TestValidateServiceAccount(t *testing.T) {
	runCreateCases(t, testServiceAccount, []createCase[*corev1.ServiceAccount]{
		{name: "name", mutate: func(sa *corev1.ServiceAccount) { sa.Name = "Builder_Bot" }, want: []want{invalid("metadata.name")}},
		{name: "long name", mutate: func(sa *corev1.ServiceAccount) { sa.Name = strings.Repeat("b", 254) }, want: []want{invalid("metadata.name")}},
		{name: "label", mutate: func(sa *corev1.ServiceAccount) { sa.Labels = map[string]string{"bad key": "v"} }, want: []want{invalid("metadata.labels")}},
	})
	runUpdateCases(t, stored(testServiceAccount), []updateCase[*corev1.ServiceAccount]{
		{name: "namespace is immutable", mutate: func(sa *corev1.ServiceAccount) { sa.Namespace = "other" }, want: []want{invalid("metadata.namespace")}},
	})
}
