package namespace

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestConditions(t *testing.T) {
	cms := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deploys := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	type cond struct {
		typ     corev1.NamespaceConditionType
		status  corev1.ConditionStatus
		reason  string
		message string
	}
	ok := func(typ corev1.NamespaceConditionType) cond {
		return cond{typ, corev1.ConditionFalse, okReasons[typ], okMessages[typ]}
	}
	for _, tc := range []struct {
		name string
		res  passResult
		want []cond
	}{
		{"all gone", passResult{}, []cond{
			ok(corev1.NamespaceDeletionDiscoveryFailure), ok(corev1.NamespaceDeletionGVParsingFailure), ok(corev1.NamespaceDeletionContentFailure),
			ok(corev1.NamespaceContentRemaining), ok(corev1.NamespaceFinalizersRemaining),
		}},
		{"finalizers hold content", passResult{
			remaining:  map[schema.GroupVersionResource]int{cms: 2, deploys: 1},
			finalizers: map[string]int{"example.com/hold": 2, "example.com/other": 1},
		}, []cond{
			ok(corev1.NamespaceDeletionDiscoveryFailure), ok(corev1.NamespaceDeletionGVParsingFailure), ok(corev1.NamespaceDeletionContentFailure),
			{corev1.NamespaceContentRemaining, corev1.ConditionTrue, "SomeResourcesRemain",
				"Some resources are remaining: configmaps. has 2 resource instances, deployments.apps has 1 resource instances"},
			{corev1.NamespaceFinalizersRemaining, corev1.ConditionTrue, "SomeFinalizersRemain",
				"Some content in the namespace has finalizers remaining: example.com/hold in 2 resource instances, example.com/other in 1 resource instances"},
		}},
		{"failures", passResult{
			discoveryErr: &discovery.ErrGroupDiscoveryFailed{Groups: map[schema.GroupVersion]error{{Group: "x", Version: "v1"}: errors.New("boom")}},
			deleteErrs:   []error{errors.New("b failed"), errors.New("a failed")},
		}, []cond{
			{corev1.NamespaceDeletionDiscoveryFailure, corev1.ConditionTrue, "DiscoveryFailed",
				"Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: x/v1: boom"},
			ok(corev1.NamespaceDeletionGVParsingFailure),
			{corev1.NamespaceDeletionContentFailure, corev1.ConditionTrue, "ContentDeletionFailed",
				"Failed to delete all resource types, 2 remaining: a failed, b failed"},
			ok(corev1.NamespaceContentRemaining), ok(corev1.NamespaceFinalizersRemaining),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st corev1.NamespaceStatus
			if !applyConditions(&st, tc.res.conditions(t0), t0) {
				t.Error("first apply reported no change")
			}
			if len(st.Conditions) != len(tc.want) {
				t.Fatalf("got %d conditions, want %d: %+v", len(st.Conditions), len(tc.want), st.Conditions)
			}
			for i, w := range tc.want {
				g := st.Conditions[i]
				if g.Type != w.typ || g.Status != w.status || g.Reason != w.reason || g.Message != w.message {
					t.Errorf("condition %d:\n got %s %s %s %q\nwant %s %s %s %q", i, g.Type, g.Status, g.Reason, g.Message, w.typ, w.status, w.reason, w.message)
				}
			}
			if applyConditions(&st, tc.res.conditions(t0.Add(time.Minute)), t0.Add(time.Minute)) {
				t.Error("applying the same result again reported a change")
			}
		})
	}
}

func TestConditionTransitionTime(t *testing.T) {
	var st corev1.NamespaceStatus
	held := passResult{remaining: map[schema.GroupVersionResource]int{{Version: "v1", Resource: "configmaps"}: 1}, finalizers: map[string]int{"f": 1}}
	applyConditions(&st, held.conditions(t0), t0)
	held.finalizers["f"] = 2
	later := t0.Add(time.Minute)
	if !applyConditions(&st, held.conditions(later), later) {
		t.Fatal("message change not applied")
	}
	if c := findCondition(st.Conditions, corev1.NamespaceFinalizersRemaining); !c.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("transition time moved on a message change: %v", c.LastTransitionTime)
	}
	end := t0.Add(2 * time.Minute)
	applyConditions(&st, passResult{}.conditions(end), end)
	if c := findCondition(st.Conditions, corev1.NamespaceFinalizersRemaining); c.Status != corev1.ConditionFalse || !c.LastTransitionTime.Time.Equal(end) {
		t.Errorf("flip to False: %+v", c)
	}
}

func TestPodEstimate(t *testing.T) {
	secs := func(s int64) *int64 { return &s }
	at := func(d time.Duration) *metav1.Time { x := metav1.NewTime(t0.Add(d)); return &x }
	pod := func(grace *int64, deletion *metav1.Time, phase corev1.PodPhase) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: deletion},
			Spec: corev1.PodSpec{TerminationGracePeriodSeconds: grace}, Status: corev1.PodStatus{Phase: phase}}
	}
	const stale = 15 * time.Second
	for _, tc := range []struct {
		name string
		pods []corev1.Pod
		want time.Duration
	}{
		{"none", nil, 0},
		{"finished pods do not count", []corev1.Pod{pod(secs(30), nil, corev1.PodSucceeded), pod(secs(30), at(20*time.Second), corev1.PodFailed)}, 0},
		{"grace clock running", []corev1.Pod{pod(secs(30), at(20*time.Second), corev1.PodRunning), pod(secs(30), at(5*time.Second), corev1.PodRunning)}, 20 * time.Second},
		{"not deleted yet: its grace period", []corev1.Pod{pod(secs(45), nil, corev1.PodRunning)}, 45 * time.Second},
		{"clock ran out (node gone): stale", []corev1.Pod{pod(secs(30), at(-time.Minute), corev1.PodRunning)}, stale},
		{"at least a second", []corev1.Pod{pod(secs(0), nil, corev1.PodPending)}, time.Second},
	} {
		if got := podEstimate(tc.pods, t0, stale); got != tc.want {
			t.Errorf("%s: podEstimate = %v, want %v", tc.name, got, tc.want)
		}
	}
}
