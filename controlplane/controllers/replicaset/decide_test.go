package replicaset

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type podOpt func(*corev1.Pod)

func node(n string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = n } }
func phase(ph corev1.PodPhase) podOpt {
	return func(p *corev1.Pod) { p.Status.Phase = ph }
}
func readySince(t time.Time) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
			Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t)})
	}
}
func created(t time.Time) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t) }
}
func restarts(n int32) podOpt {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "c", RestartCount: n})
	}
}
func cost(c string) podOpt {
	return func(p *corev1.Pod) { p.Annotations = map[string]string{PodDeletionCostAnnotation: c} }
}
func labeled(l map[string]string) podOpt { return func(p *corev1.Pod) { p.Labels = l } }

func mkPod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func names(ps []*corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestPodsToDeleteOrder(t *testing.T) {
	running := func(extra ...podOpt) []podOpt {
		return append([]podOpt{node("n1"), phase(corev1.PodRunning)}, extra...)
	}
	tests := []struct {
		name    string
		pods    []*corev1.Pod
		related []*corev1.Pod
		n       int
		want    []string
	}{
		{
			name: "unscheduled before scheduled",
			pods: []*corev1.Pod{mkPod("scheduled", node("n1"), phase(corev1.PodPending)), mkPod("unscheduled", phase(corev1.PodPending))},
			n:    1, want: []string{"unscheduled"},
		},
		{
			name: "pending before unknown before running",
			pods: []*corev1.Pod{mkPod("running", node("n"), phase(corev1.PodRunning)), mkPod("unknown", node("n"), phase(corev1.PodUnknown)), mkPod("pending", node("n"), phase(corev1.PodPending))},
			n:    2, want: []string{"pending", "unknown"},
		},
		{
			name: "not ready before ready",
			pods: []*corev1.Pod{mkPod("ready", running(readySince(t0))...), mkPod("notready", running()...)},
			n:    1, want: []string{"notready"},
		},
		{
			name: "lower deletion cost first",
			pods: []*corev1.Pod{mkPod("expensive", running(readySince(t0), cost("100"))...), mkPod("cheap", running(readySince(t0), cost("-5"))...)},
			n:    1, want: []string{"cheap"},
		},
		{
			name: "doubled up on a node first",
			pods: []*corev1.Pod{mkPod("alone", node("n2"), phase(corev1.PodRunning), readySince(t0)), mkPod("crowded", running(readySince(t0))...)},
			related: []*corev1.Pod{
				mkPod("crowded", running(readySince(t0))...), mkPod("sibling", running(readySince(t0))...),
				mkPod("alone", node("n2"), phase(corev1.PodRunning), readySince(t0)),
			},
			n: 1, want: []string{"crowded"},
		},
		{
			name: "ready more recently first",
			pods: []*corev1.Pod{mkPod("old", running(readySince(t0))...), mkPod("recent", running(readySince(t0.Add(time.Minute)))...)},
			n:    1, want: []string{"recent"},
		},
		{
			name: "more restarts first",
			pods: []*corev1.Pod{mkPod("stable", running(readySince(t0), restarts(0))...), mkPod("flappy", running(readySince(t0), restarts(7))...)},
			n:    1, want: []string{"flappy"},
		},
		{
			name: "newer first",
			pods: []*corev1.Pod{mkPod("older", running(readySince(t0), created(t0))...), mkPod("newer", running(readySince(t0), created(t0.Add(time.Hour)))...)},
			n:    1, want: []string{"newer"},
		},
		{
			name: "all when n covers them",
			pods: []*corev1.Pod{mkPod("a"), mkPod("b")},
			n:    5, want: []string{"a", "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(PodsToDelete(tt.pods, tt.related, tt.n, t0.Add(time.Hour)))
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestCalculateStatus(t *testing.T) {
	rs := func(replicas, minReady int32, conds ...appsv1.ReplicaSetCondition) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Generation: 3},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: ptr.To(replicas), MinReadySeconds: minReady,
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x", "tier": "web"}}},
			},
			Status: appsv1.ReplicaSetStatus{Conditions: conds},
		}
	}
	full := labeled(map[string]string{"app": "x", "tier": "web"})
	partial := labeled(map[string]string{"app": "x"})
	failure := appsv1.ReplicaSetCondition{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: ReasonFailedCreate}
	now := t0.Add(10 * time.Second)
	tests := []struct {
		name        string
		rs          *appsv1.ReplicaSet
		active      []*corev1.Pod
		terminating int
		err         error
		want        appsv1.ReplicaSetStatus
		recheck     time.Duration
		failure     string
	}{
		{
			name:   "counts",
			rs:     rs(3, 0),
			active: []*corev1.Pod{mkPod("a", full, readySince(t0)), mkPod("b", partial, readySince(t0)), mkPod("c", full)},
			want:   appsv1.ReplicaSetStatus{Replicas: 3, FullyLabeledReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, TerminatingReplicas: ptr.To[int32](0)},
		},
		{
			name:        "minReadySeconds holds availability and asks for a recheck",
			rs:          rs(2, 5),
			active:      []*corev1.Pod{mkPod("a", full, readySince(t0)), mkPod("b", full, readySince(t0.Add(8*time.Second)))},
			terminating: 1,
			want:        appsv1.ReplicaSetStatus{Replicas: 2, FullyLabeledReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 1, TerminatingReplicas: ptr.To[int32](1)},
			recheck:     3*time.Second + time.Millisecond,
		},
		{
			name:    "create error sets ReplicaFailure FailedCreate",
			rs:      rs(2, 0),
			err:     errors.New("exceeded quota"),
			want:    appsv1.ReplicaSetStatus{TerminatingReplicas: ptr.To[int32](0)},
			failure: ReasonFailedCreate,
		},
		{
			name:    "delete error sets ReplicaFailure FailedDelete",
			rs:      rs(0, 0),
			active:  []*corev1.Pod{mkPod("a", full)},
			err:     errors.New("forbidden"),
			want:    appsv1.ReplicaSetStatus{Replicas: 1, FullyLabeledReplicas: 1, TerminatingReplicas: ptr.To[int32](0)},
			failure: ReasonFailedDelete,
		},
		{
			name:    "success clears ReplicaFailure",
			rs:      rs(0, 0, failure),
			want:    appsv1.ReplicaSetStatus{TerminatingReplicas: ptr.To[int32](0)},
			failure: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			term := make([]*corev1.Pod, tt.terminating)
			st := CalculateStatus(tt.rs, tt.active, term, tt.err, now)
			got := st.ReplicaSetStatus
			if got.Replicas != tt.want.Replicas || got.FullyLabeledReplicas != tt.want.FullyLabeledReplicas ||
				got.ReadyReplicas != tt.want.ReadyReplicas || got.AvailableReplicas != tt.want.AvailableReplicas ||
				*got.TerminatingReplicas != *tt.want.TerminatingReplicas {
				t.Fatalf("status %+v, want %+v", got, tt.want)
			}
			if st.RecheckAfter != tt.recheck {
				t.Errorf("recheck after %v, want %v", st.RecheckAfter, tt.recheck)
			}
			c := getCondition(got.Conditions, appsv1.ReplicaSetReplicaFailure)
			switch {
			case tt.failure == "" && c != nil:
				t.Errorf("unexpected ReplicaFailure %+v", c)
			case tt.failure != "" && (c == nil || c.Reason != tt.failure || c.Status != corev1.ConditionTrue || c.Message != tt.err.Error()):
				t.Errorf("ReplicaFailure = %+v, want reason %s", c, tt.failure)
			}
			if !StatusChanged(tt.rs, got) {
				t.Error("StatusChanged = false with observedGeneration behind")
			}
		})
	}
}

func TestSlowStartBatch(t *testing.T) {
	tests := []struct {
		name      string
		count     int
		failAfter int64 // calls that succeed before every later one fails; -1 never fails
		wantOK    int
		wantCalls int64
	}{
		{name: "all succeed in 1,2,4,3", count: 10, failAfter: -1, wantOK: 10, wantCalls: 10},
		{name: "first fails: one call only", count: 10, failAfter: 0, wantOK: 0, wantCalls: 1},
		{name: "fails in the third batch", count: 10, failAfter: 3, wantOK: 3, wantCalls: 7},
		{name: "partial batch", count: 10, failAfter: 5, wantOK: 5, wantCalls: 7},
		{name: "nothing", count: 0, failAfter: -1, wantOK: 0, wantCalls: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				calls atomic.Int64
				seen  sync.Map
			)
			ok, err := SlowStartBatch(tt.count, SlowStartInitialBatchSize, func(i int) error {
				if _, dup := seen.LoadOrStore(i, true); dup {
					t.Errorf("index %d called twice", i)
				}
				if n := calls.Add(1); tt.failAfter >= 0 && n > tt.failAfter {
					return errors.New("quota")
				}
				return nil
			})
			if ok != tt.wantOK || calls.Load() != tt.wantCalls {
				t.Fatalf("successes %d calls %d, want %d and %d", ok, calls.Load(), tt.wantOK, tt.wantCalls)
			}
			// The first calls, in order of i.
			for i := range int(tt.wantCalls) {
				if _, ok := seen.Load(i); !ok {
					t.Errorf("index %d not called", i)
				}
			}
			if (err != nil) != (tt.wantOK < tt.count) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
