package deployment

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func deploy(replicas int32, surge, unavailable string) *appsv1.Deployment {
	s, u := intstr.Parse(surge), intstr.Parse(unavailable)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "d", Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}},
			ProgressDeadlineSeconds: ptr.To[int32](60),
		},
	}
}

func mkRS(name string, spec, status, available int32, age time.Duration, annotations map[string]string) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name), CreationTimestamp: metav1.NewTime(t0.Add(-age)), Annotations: annotations},
		Spec:       appsv1.ReplicaSetSpec{Replicas: ptr.To(spec)},
		Status:     appsv1.ReplicaSetStatus{Replicas: status, ReadyReplicas: available, AvailableReplicas: available},
	}
}

func TestResolveFenceposts(t *testing.T) {
	tests := []struct {
		surge, unavailable string
		desired            int32
		wantS, wantU       int32
	}{
		{"25%", "25%", 4, 1, 1},
		{"25%", "25%", 3, 1, 0},   // surge rounds up, unavailable down
		{"10%", "10%", 5, 1, 0},   // 0.5 up and down
		{"0%", "10%", 5, 0, 1},    // both zero: one unavailable
		{"0", "0", 3, 0, 1},       // both zero: one unavailable
		{"2", "3", 10, 2, 3},      // ints as given
		{"50%", "0", 3, 2, 0},     // 1.5 up
		{"100%", "100%", 7, 7, 7}, // whole
	}
	for _, tt := range tests {
		s, u, err := ResolveFenceposts(ptr.To(intstr.Parse(tt.surge)), ptr.To(intstr.Parse(tt.unavailable)), tt.desired)
		if err != nil || s != tt.wantS || u != tt.wantU {
			t.Errorf("ResolveFenceposts(%s, %s, %d) = %d, %d, %v; want %d, %d", tt.surge, tt.unavailable, tt.desired, s, u, err, tt.wantS, tt.wantU)
		}
	}
	if got := MaxUnavailable(deploy(3, "0", "5")); got != 3 {
		t.Errorf("MaxUnavailable capped at replicas: %d", got)
	}
	recreate := deploy(3, "1", "1")
	recreate.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if MaxSurge(recreate) != 0 || MaxUnavailable(recreate) != 0 {
		t.Error("Recreate has surge or unavailability")
	}
}

func TestNewRSNewReplicas(t *testing.T) {
	tests := []struct {
		name string
		d    *appsv1.Deployment
		old  *appsv1.ReplicaSet
		new  *appsv1.ReplicaSet
		want int32
	}{
		{"surge room", deploy(10, "3", "2"), mkRS("old", 10, 10, 10, time.Hour, nil), mkRS("new", 0, 0, 0, 0, nil), 3},
		{"no room", deploy(10, "3", "2"), mkRS("old", 10, 10, 10, time.Hour, nil), mkRS("new", 3, 3, 0, 0, nil), 3},
		{"old pods still running count", deploy(10, "3", "2"), mkRS("old", 8, 10, 10, time.Hour, nil), mkRS("new", 3, 3, 0, 0, nil), 3},
		{"old pods gone", deploy(10, "3", "2"), mkRS("old", 8, 8, 8, time.Hour, nil), mkRS("new", 3, 3, 0, 0, nil), 5},
		{"never beyond replicas", deploy(4, "100%", "0"), mkRS("old", 1, 1, 1, time.Hour, nil), mkRS("new", 3, 3, 3, 0, nil), 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewRSNewReplicas(tt.d, []*appsv1.ReplicaSet{tt.old, tt.new}, tt.new); got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
		})
	}
	recreate := deploy(6, "1", "1")
	recreate.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if got := NewRSNewReplicas(recreate, nil, mkRS("new", 0, 0, 0, 0, nil)); got != 6 {
		t.Errorf("recreate: %d", got)
	}
}

func TestProportionalSizes(t *testing.T) {
	ann := func(desired, max string) map[string]string {
		return map[string]string{DesiredReplicasAnnotation: desired, MaxReplicasAnnotation: max}
	}
	tests := []struct {
		name     string
		replicas int32
		rss      []*appsv1.ReplicaSet
		want     map[string]int32
		op       string
	}{
		{
			name: "scale up 10 to 20 mid-rollout", replicas: 20,
			rss:  []*appsv1.ReplicaSet{mkRS("old", 8, 8, 8, time.Hour, ann("10", "13")), mkRS("new", 5, 5, 0, 0, ann("10", "13"))},
			want: map[string]int32{"old": 14, "new": 9}, op: "up",
		},
		{
			name: "scale down 10 to 5 mid-rollout", replicas: 5,
			rss:  []*appsv1.ReplicaSet{mkRS("old", 8, 8, 8, time.Hour, ann("10", "13")), mkRS("new", 5, 5, 0, 0, ann("10", "13"))},
			want: map[string]int32{"old": 5, "new": 3}, op: "down",
		},
		{
			name: "scale to zero", replicas: 0,
			rss:  []*appsv1.ReplicaSet{mkRS("old", 8, 8, 8, time.Hour, ann("10", "13")), mkRS("new", 5, 5, 0, 0, ann("10", "13"))},
			want: map[string]int32{"old": 0, "new": 0}, op: "down",
		},
		{
			name: "equal sizes: newer first up, leftover to it", replicas: 11,
			rss:  []*appsv1.ReplicaSet{mkRS("old", 5, 5, 5, time.Hour, ann("10", "10")), mkRS("new", 5, 5, 5, 0, ann("10", "10"))},
			want: map[string]int32{"old": 7, "new": 7}, op: "up",
		},
		{
			name: "nothing to add", replicas: 10,
			rss:  []*appsv1.ReplicaSet{mkRS("old", 8, 8, 8, time.Hour, ann("10", "13")), mkRS("new", 5, 5, 0, 0, ann("10", "13"))},
			want: map[string]int32{"old": 8, "new": 5}, op: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deploy(tt.replicas, "3", "2")
			got, op := ProportionalSizes(d, tt.rss)
			if op != tt.op {
				t.Errorf("op %q, want %q", op, tt.op)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("sizes %v, want %v", got, tt.want)
					break
				}
			}
		})
	}
}

func TestSetNewReplicaSetAnnotations(t *testing.T) {
	d := deploy(4, "1", "1")
	d.Annotations = map[string]string{ChangeCauseAnnotation: "v2", lastAppliedAnnotation: "{}", RevisionAnnotation: "7", "team": "a"}

	fresh := &appsv1.ReplicaSet{}
	if !SetNewReplicaSetAnnotations(d, fresh, "3", false) {
		t.Fatal("no change on a fresh ReplicaSet")
	}
	want := map[string]string{ChangeCauseAnnotation: "v2", "team": "a", RevisionAnnotation: "3", DesiredReplicasAnnotation: "4", MaxReplicasAnnotation: "5"}
	if len(fresh.Annotations) != len(want) {
		t.Fatalf("annotations %v, want %v", fresh.Annotations, want)
	}
	for k, v := range want {
		if fresh.Annotations[k] != v {
			t.Errorf("%s = %q, want %q", k, fresh.Annotations[k], v)
		}
	}
	if SetNewReplicaSetAnnotations(d, fresh, "3", true) {
		t.Error("second call changed something")
	}

	// Rolled back to: the old revision goes to the history.
	back := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{RevisionAnnotation: "1"}}}
	SetNewReplicaSetAnnotations(d, back, "3", true)
	if back.Annotations[RevisionAnnotation] != "3" || back.Annotations[RevisionHistoryAnnotation] != "1" {
		t.Errorf("rollback annotations %v", back.Annotations)
	}
	SetNewReplicaSetAnnotations(d, back, "5", true)
	if back.Annotations[RevisionAnnotation] != "5" || back.Annotations[RevisionHistoryAnnotation] != "1,3" {
		t.Errorf("second rollback annotations %v", back.Annotations)
	}
	// Never lowered.
	SetNewReplicaSetAnnotations(d, back, "4", true)
	if back.Annotations[RevisionAnnotation] != "5" {
		t.Errorf("revision lowered to %s", back.Annotations[RevisionAnnotation])
	}
}

func TestComputeHash(t *testing.T) {
	tpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i:1"}}},
	}
	h := ComputeHash(&tpl, nil)
	if h != ComputeHash(tpl.DeepCopy(), nil) {
		t.Fatal("hash not deterministic")
	}
	if h == ComputeHash(&tpl, ptr.To[int32](1)) {
		t.Error("collisionCount does not change the hash")
	}
	other := tpl.DeepCopy()
	other.Spec.Containers[0].Image = "i:2"
	if h == ComputeHash(other, nil) {
		t.Error("template change does not change the hash")
	}
	if strings.Trim(h, "bcdfghjklmnpqrstvwxz2456789") != "" || len(h) == 0 {
		t.Errorf("hash %q not safe-encoded", h)
	}
	withHash := tpl.DeepCopy()
	withHash.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = h
	if !EqualIgnoreHash(&tpl, withHash) || EqualIgnoreHash(&tpl, other) {
		t.Error("EqualIgnoreHash")
	}
}

func TestFindReplicaSets(t *testing.T) {
	d := deploy(3, "1", "1")
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "c", Image: "new"}}
	tpl := func(rs *appsv1.ReplicaSet, image string) *appsv1.ReplicaSet {
		rs.Spec.Template.Spec.Containers = []corev1.Container{{Name: "c", Image: image}}
		return rs
	}
	older := tpl(mkRS("a-new-older", 0, 0, 0, 2*time.Hour, nil), "new")
	newer := tpl(mkRS("b-new-newer", 3, 3, 3, time.Hour, nil), "new")
	old := tpl(mkRS("c-old", 2, 2, 2, 3*time.Hour, nil), "old")
	empty := tpl(mkRS("d-empty", 0, 0, 0, 4*time.Hour, nil), "older")
	all := []*appsv1.ReplicaSet{newer, old, older, empty}
	if got := FindNewReplicaSet(d, all); got != older {
		t.Errorf("new replicaset %v, want the oldest match", got.Name)
	}
	withReplicas, olds := FindOldReplicaSets(d, all)
	if len(withReplicas) != 2 || len(olds) != 3 {
		t.Errorf("old with replicas %d, all old %d", len(withReplicas), len(olds))
	}
	if got := FindActiveOrLatest(nil, []*appsv1.ReplicaSet{old, empty}); got != old {
		t.Errorf("active or latest = %v", got.Name)
	}
	if got := FindActiveOrLatest(nil, []*appsv1.ReplicaSet{empty, tpl(mkRS("e", 0, 0, 0, time.Minute, nil), "x")}); got.Name != "e" {
		t.Errorf("latest of none active = %v", got.Name)
	}
	if got := FindActiveOrLatest(newer, []*appsv1.ReplicaSet{old}); got != nil {
		t.Errorf("two active gave %v", got.Name)
	}
}

func TestIsSaturatedAndOldPodsRunning(t *testing.T) {
	d := deploy(3, "1", "1")
	sat := mkRS("n", 3, 3, 3, 0, map[string]string{DesiredReplicasAnnotation: "3"})
	if !IsSaturated(d, sat) {
		t.Error("saturated not seen")
	}
	if IsSaturated(d, mkRS("n", 3, 3, 2, 0, map[string]string{DesiredReplicasAnnotation: "3"})) {
		t.Error("not all available yet")
	}
	if IsSaturated(d, mkRS("n", 3, 3, 3, 0, nil)) {
		t.Error("no desired annotation")
	}

	old := mkRS("old", 0, 0, 0, time.Hour, nil)
	pod := func(phase corev1.PodPhase) *corev1.Pod { return &corev1.Pod{Status: corev1.PodStatus{Phase: phase}} }
	tests := []struct {
		name string
		olds []*appsv1.ReplicaSet
		pods map[types.UID][]*corev1.Pod
		want bool
	}{
		{"status replicas", []*appsv1.ReplicaSet{mkRS("old", 0, 1, 0, time.Hour, nil)}, nil, true},
		{"terminating pod left", []*appsv1.ReplicaSet{old}, map[types.UID][]*corev1.Pod{"old": {pod(corev1.PodRunning)}}, true},
		{"finished pods only", []*appsv1.ReplicaSet{old}, map[types.UID][]*corev1.Pod{"old": {pod(corev1.PodSucceeded), pod(corev1.PodFailed)}}, false},
		{"new pods ignored", []*appsv1.ReplicaSet{old}, map[types.UID][]*corev1.Pod{"n": {pod(corev1.PodRunning)}, "old": nil}, false},
	}
	for _, tt := range tests {
		if got := OldPodsRunning(sat, tt.olds, tt.pods); got != tt.want {
			t.Errorf("%s: %v", tt.name, got)
		}
	}
}

func TestRolloutStatus(t *testing.T) {
	now := t0
	progressing := func(reason string, updated time.Time) []appsv1.DeploymentCondition {
		return []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: reason,
			LastUpdateTime: metav1.NewTime(updated), LastTransitionTime: metav1.NewTime(updated.Add(-time.Hour))}}
	}
	tests := []struct {
		name       string
		status     appsv1.DeploymentStatus
		newRS      *appsv1.ReplicaSet
		old        *appsv1.ReplicaSet
		wantReason string
		wantStatus corev1.ConditionStatus
		wantAvail  corev1.ConditionStatus
		recheck    time.Duration
	}{
		{
			name:   "complete",
			status: appsv1.DeploymentStatus{Conditions: progressing(ReasonReplicaSetUpdated, now)},
			newRS:  mkRS("n", 3, 3, 3, 0, nil), old: mkRS("o", 0, 0, 0, time.Hour, nil),
			wantReason: ReasonNewRSAvailable, wantStatus: corev1.ConditionTrue, wantAvail: corev1.ConditionTrue, recheck: -1,
		},
		{
			name:   "progress made",
			status: appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, Conditions: progressing(ReasonNewReplicaSet, now.Add(-50*time.Second))},
			newRS:  mkRS("n", 2, 2, 0, 0, nil), old: mkRS("o", 2, 2, 2, time.Hour, nil),
			wantReason: ReasonReplicaSetUpdated, wantStatus: corev1.ConditionTrue, wantAvail: corev1.ConditionTrue, recheck: 60 * time.Second,
		},
		{
			name:   "no progress within the deadline",
			status: appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, AvailableReplicas: 2, ReadyReplicas: 2, Conditions: progressing(ReasonReplicaSetUpdated, now.Add(-50*time.Second))},
			newRS:  mkRS("n", 2, 2, 0, 0, nil), old: mkRS("o", 2, 2, 2, time.Hour, nil),
			wantReason: ReasonReplicaSetUpdated, wantStatus: corev1.ConditionTrue, wantAvail: corev1.ConditionTrue, recheck: 10 * time.Second,
		},
		{
			name:   "deadline passed",
			status: appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, AvailableReplicas: 1, ReadyReplicas: 1, Conditions: progressing(ReasonReplicaSetUpdated, now.Add(-61*time.Second))},
			newRS:  mkRS("n", 2, 2, 0, 0, nil), old: mkRS("o", 2, 2, 1, time.Hour, nil),
			wantReason: ReasonTimedOut, wantStatus: corev1.ConditionFalse, wantAvail: corev1.ConditionFalse, recheck: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deploy(3, "1", "1")
			d.Status = tt.status
			st := RolloutStatus([]*appsv1.ReplicaSet{tt.old, tt.newRS}, tt.newRS, d, now)
			c := GetCondition(st, appsv1.DeploymentProgressing)
			if c == nil || c.Reason != tt.wantReason || c.Status != tt.wantStatus {
				t.Fatalf("Progressing = %+v", c)
			}
			if tt.wantReason == ReasonReplicaSetUpdated && tt.recheck == 60*time.Second &&
				!c.LastTransitionTime.Equal(&tt.status.Conditions[0].LastTransitionTime) {
				t.Errorf("lastTransitionTime moved: %v", c.LastTransitionTime)
			}
			if a := GetCondition(st, appsv1.DeploymentAvailable); a == nil || a.Status != tt.wantAvail {
				t.Errorf("Available = %+v", a)
			}
			if tt.recheck != -1 || tt.wantReason == ReasonTimedOut {
				// What the controller would schedule if st were written.
				d.Status = st
				if got := StuckRecheck(d, st, now); got != tt.recheck {
					t.Errorf("recheck %v, want %v", got, tt.recheck)
				}
			}
		})
	}
}

func TestReplicaFailureCarriedOver(t *testing.T) {
	d := deploy(3, "1", "1")
	n := mkRS("n", 3, 1, 1, 0, nil)
	n.Status.Conditions = []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "quota"}}
	st := RolloutStatus([]*appsv1.ReplicaSet{n}, n, d, t0)
	if c := GetCondition(st, appsv1.DeploymentReplicaFailure); c == nil || c.Reason != "FailedCreate" || c.Message != "quota" {
		t.Fatalf("ReplicaFailure = %+v", c)
	}
	n.Status.Conditions = nil
	d.Status = st
	if c := GetCondition(RolloutStatus([]*appsv1.ReplicaSet{n}, n, d, t0), appsv1.DeploymentReplicaFailure); c != nil {
		t.Fatalf("ReplicaFailure kept: %+v", c)
	}
}
