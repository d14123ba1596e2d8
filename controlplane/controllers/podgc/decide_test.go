package podgc

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// pod is a pod named name on node (none: ""), created hour hours after t0.
func pod(name, node string, phase corev1.PodPhase, hour int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(hour) * time.Hour))},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: phase},
	}
}

// deleting marks p deleted with grace period grace (nil: not accepted
// yet) and finalizers.
func deleting(p *corev1.Pod, grace *int64, finalizers ...string) *corev1.Pod {
	p.DeletionTimestamp = &metav1.Time{Time: t0}
	p.DeletionGracePeriodSeconds = grace
	p.Finalizers = finalizers
	return p
}

func evicted(p *corev1.Pod) *corev1.Pod {
	p.Status.Reason = evictedReason
	return p
}

func names(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

const fin = "example.com/keep"

func TestBlockedOnFinalizers(t *testing.T) {
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want bool
	}{
		{"finished, not deleted", pod("a", "n", corev1.PodSucceeded, 1), false},
		{"deletion not accepted yet", deleting(pod("a", "n", corev1.PodSucceeded, 1), nil, fin), false},
		{"within its grace period", deleting(pod("a", "n", corev1.PodSucceeded, 1), new(int64(30)), fin), false},
		{"no finalizers", deleting(pod("a", "n", corev1.PodSucceeded, 1), new(int64(0))), false},
		{"running", deleting(pod("a", "n", corev1.PodRunning, 1), new(int64(0)), fin), false},
		{"succeeded, only finalizers", deleting(pod("a", "n", corev1.PodSucceeded, 1), new(int64(0)), fin), true},
		{"failed, only finalizers", deleting(pod("a", "n", corev1.PodFailed, 1), new(int64(0)), fin), true},
	} {
		if got := blockedOnFinalizers(tc.pod); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestTerminatedToDelete(t *testing.T) {
	blocked := func(p *corev1.Pod) *corev1.Pod { return deleting(p, new(int64(0)), fin) }
	for _, tc := range []struct {
		name      string
		pods      []*corev1.Pod
		threshold int
		want      []string
	}{
		{"oldest beyond the threshold", []*corev1.Pod{
			pod("c", "n", corev1.PodFailed, 3), pod("a", "n", corev1.PodFailed, 1), pod("b", "n", corev1.PodSucceeded, 2),
		}, 1, []string{"a", "b"}},
		{"threshold 0 disables", []*corev1.Pod{pod("a", "n", corev1.PodFailed, 1), pod("b", "n", corev1.PodSucceeded, 2)}, 0, nil},
		{"negative threshold disables", []*corev1.Pod{pod("a", "n", corev1.PodFailed, 1)}, -1, nil},
		{"running and pending pods do not count", []*corev1.Pod{
			pod("a", "n", corev1.PodRunning, 1), pod("p", "", corev1.PodPending, 0), pod("b", "n", corev1.PodSucceeded, 2), pod("c", "n", corev1.PodFailed, 3),
		}, 1, []string{"b"}},
		{"within the threshold", []*corev1.Pod{pod("a", "n", corev1.PodFailed, 1), pod("b", "n", corev1.PodSucceeded, 2)}, 5, nil},
		{"evicted pods first", []*corev1.Pod{
			pod("a", "n", corev1.PodFailed, 1), pod("b", "n", corev1.PodSucceeded, 2), evicted(pod("c", "n", corev1.PodFailed, 3)),
		}, 1, []string{"c", "a"}},
		{"same creation time: by name", []*corev1.Pod{
			pod("y", "n", corev1.PodFailed, 1), pod("x", "n", corev1.PodFailed, 1), pod("z", "n", corev1.PodFailed, 1),
		}, 1, []string{"x", "y"}},
		{"pods waiting for finalizers count but are not deleted again", []*corev1.Pod{
			blocked(pod("a", "n", corev1.PodSucceeded, 1)), blocked(pod("b", "n", corev1.PodFailed, 2)), pod("c", "n", corev1.PodSucceeded, 3),
		}, 2, []string{"c"}},
		{"candidates limit the count", []*corev1.Pod{
			blocked(pod("a", "n", corev1.PodSucceeded, 1)), blocked(pod("b", "n", corev1.PodFailed, 2)),
			blocked(pod("c", "n", corev1.PodSucceeded, 3)), pod("d", "n", corev1.PodSucceeded, 4),
		}, 1, []string{"d"}},
		{"deletions not only waiting for finalizers are sent again", []*corev1.Pod{
			deleting(pod("a", "n", corev1.PodSucceeded, 1), new(int64(30)), fin),
			deleting(pod("b", "n", corev1.PodSucceeded, 2), new(int64(0))),
			deleting(pod("c", "n", corev1.PodSucceeded, 3), nil, fin),
			pod("d", "n", corev1.PodSucceeded, 4),
		}, 1, []string{"a", "b", "c"}},
	} {
		if got := names(terminatedToDelete(tc.pods, tc.threshold)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func node(name string, ready corev1.ConditionStatus, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.NodeSpec{Taints: taints},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}},
	}
}

func TestTerminatingOutOfService(t *testing.T) {
	oos := func(effect corev1.TaintEffect, value string) corev1.Taint {
		return corev1.Taint{Key: corev1.TaintNodeOutOfService, Value: value, Effect: effect}
	}
	nodes := map[string]*corev1.Node{}
	for _, n := range []*corev1.Node{
		node("w0", corev1.ConditionFalse, oos(corev1.TaintEffectNoExecute, "")),
		node("w1", corev1.ConditionFalse),
		node("w2", corev1.ConditionTrue, oos(corev1.TaintEffectNoExecute, "")),
		node("w3", corev1.ConditionUnknown, oos(corev1.TaintEffectNoSchedule, "")),
		node("w4", corev1.ConditionFalse, oos(corev1.TaintEffectPreferNoSchedule, "")),
		node("w5", corev1.ConditionFalse, oos(corev1.TaintEffectNoExecute, "shutdown")),
		{ObjectMeta: metav1.ObjectMeta{Name: "w6"}, Spec: corev1.NodeSpec{Taints: []corev1.Taint{oos(corev1.TaintEffectNoExecute, "")}}},
	} {
		nodes[n.Name] = n
	}
	lookup := func(name string) (*corev1.Node, bool) { n, ok := nodes[name]; return n, ok }
	var pods []*corev1.Pod
	for i, n := range []string{"w0", "w1", "w2", "w3", "w4", "w5", "w6", "gone", ""} {
		pods = append(pods,
			pod("live-"+n, n, corev1.PodRunning, i),
			deleting(pod("del-"+n, n, corev1.PodRunning, 10-i), new(int64(30))),
		)
	}
	pods = append(pods,
		deleting(pod("finished-w0", "w0", corev1.PodFailed, 20), new(int64(0))),
		deleting(pod("blocked-w0", "w0", corev1.PodFailed, 21), new(int64(0)), fin),
		deleting(pod("blocked-running-w0", "w0", corev1.PodRunning, 22), new(int64(0)), fin),
	)
	// Oldest first.
	want := []string{"del-w6", "del-w5", "del-w4", "del-w3", "del-w0", "finished-w0", "blocked-running-w0"}
	if got := names(terminatingOutOfService(pods, lookup)); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestUnscheduledTerminating(t *testing.T) {
	pods := []*corev1.Pod{
		deleting(pod("a", "", corev1.PodFailed, 1), nil),
		deleting(pod("b", "", corev1.PodSucceeded, 2), nil),
		deleting(pod("c", "", corev1.PodPending, 3), new(int64(0))),
		pod("d", "", corev1.PodPending, 4),
		deleting(pod("e", "node", corev1.PodRunning, 5), new(int64(30))),
		deleting(pod("f", "", corev1.PodFailed, 6), new(int64(0)), fin),
		deleting(pod("g", "", corev1.PodPending, 7), new(int64(0)), fin),
	}
	want := []string{"a", "b", "c", "g"}
	if got := names(unscheduledTerminating(pods)); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestMissingNodesAndOrphaned(t *testing.T) {
	pods := []*corev1.Pod{
		pod("a", "there", corev1.PodRunning, 1),
		pod("b", "gone", corev1.PodRunning, 2),
		pod("c", "gone", corev1.PodSucceeded, 3),
		pod("d", "", corev1.PodPending, 4),
		pod("e", "late", corev1.PodRunning, 5),
		deleting(pod("f", "gone", corev1.PodFailed, 6), new(int64(0)), fin),
		deleting(pod("g", "gone", corev1.PodRunning, 7), new(int64(0)), fin),
	}
	if got := missingNodes(pods, sets.New("there")); !got.Equal(sets.New("gone", "late")) {
		t.Errorf("missing nodes %v, want gone and late", sets.List(got))
	}
	want := []string{"b", "c", "g"}
	if got := names(orphaned(pods, sets.New("gone"))); !slices.Equal(got, want) {
		t.Errorf("orphaned %v, want %v", got, want)
	}
}

func TestQuarantine(t *testing.T) {
	q := quarantine{}
	d := 40 * time.Second
	q.add(sets.New("a"), t0, d)
	q.add(sets.New("a", "b"), t0.Add(10*time.Second), d)
	if due := q.takeDue(t0.Add(39 * time.Second)); len(due) != 0 {
		t.Fatalf("due before the quarantine ended: %v", due)
	}
	// a keeps its earlier end.
	if due := q.takeDue(t0.Add(40 * time.Second)); !slices.Equal(due, []string{"a"}) {
		t.Fatalf("due at 40s: %v, want [a]", due)
	}
	if due := q.takeDue(t0.Add(40 * time.Second)); len(due) != 0 {
		t.Fatalf("a taken twice: %v", due)
	}
	// Taken, a starts over when still missing.
	q.add(sets.New("a"), t0.Add(45*time.Second), d)
	if due := q.takeDue(t0.Add(time.Minute)); !slices.Equal(due, []string{"b"}) {
		t.Fatalf("due at 60s: %v, want [b]", due)
	}
	if due := q.takeDue(t0.Add(85 * time.Second)); !slices.Equal(due, []string{"a"}) {
		t.Fatalf("due at 85s: %v, want [a]", due)
	}
}

func TestFailedStatus(t *testing.T) {
	now := t0.Add(time.Hour)
	cond := &corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: reasonDeletionByPodGC, Message: messageNodeGone}

	if _, ok := failedStatus(pod("a", "n", corev1.PodSucceeded, 0), cond, now); ok {
		t.Error("a succeeded pod is marked")
	}
	if _, ok := failedStatus(pod("a", "n", corev1.PodFailed, 0), cond, now); ok {
		t.Error("a failed pod is marked again")
	}

	p := pod("a", "n", corev1.PodRunning, 0)
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	st, ok := failedStatus(p, nil, now)
	if !ok || st.Phase != corev1.PodFailed || len(st.Conditions) != 1 {
		t.Errorf("without a condition: %v %+v", ok, st)
	}
	st, _ = failedStatus(p, cond, now)
	if st.Phase != corev1.PodFailed || len(st.Conditions) != 2 || st.Conditions[1].Reason != reasonDeletionByPodGC ||
		st.Conditions[1].Message != messageNodeGone || !st.Conditions[1].LastTransitionTime.Time.Equal(now) {
		t.Errorf("condition added: %+v", st)
	}
	if p.Status.Phase != corev1.PodRunning || len(p.Status.Conditions) != 1 {
		t.Errorf("the pod itself changed: %+v", p.Status)
	}

	// A DisruptionTarget set by the taint eviction is taken over, with its
	// transition time.
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: "DeletionByTaintManager", LastTransitionTime: metav1.NewTime(t0)})
	st, _ = failedStatus(p, cond, now)
	if c := st.Conditions[1]; len(st.Conditions) != 2 || c.Reason != reasonDeletionByPodGC || !c.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("condition taken over: %+v", st.Conditions)
	}
	p.Status.Conditions[1].Status = corev1.ConditionFalse
	st, _ = failedStatus(p, cond, now)
	if c := st.Conditions[1]; c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Time.Equal(now) {
		t.Errorf("condition turned True: %+v", c)
	}
}
