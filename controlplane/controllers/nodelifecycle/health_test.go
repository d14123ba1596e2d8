package nodelifecycle

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func mtime(d time.Duration) *metav1.Time { x := metav1.NewTime(at(d)); return &x }

func cond(typ corev1.NodeConditionType, st corev1.ConditionStatus, hb time.Duration) corev1.NodeCondition {
	return corev1.NodeCondition{Type: typ, Status: st, Reason: "KubeletReady", Message: "ok",
		LastHeartbeatTime: *mtime(hb), LastTransitionTime: *mtime(hb)}
}

func node(conds ...corev1.NodeCondition) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", CreationTimestamp: *mtime(-time.Hour)},
		Status:     corev1.NodeStatus{Conditions: conds},
	}
}

func lease(renew time.Duration) *coordinationv1.Lease {
	r := metav1.NewMicroTime(at(renew))
	return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{RenewTime: &r}}
}

func TestObserve(t *testing.T) {
	ready := cond(corev1.NodeReady, corev1.ConditionTrue, 0)
	readyLater := cond(corev1.NodeReady, corev1.ConditionTrue, 5*time.Second)
	prev := &heartbeat{probe: at(0), renew: at(0), ready: ready.DeepCopy()}
	for _, tc := range []struct {
		name      string
		prev      *heartbeat
		node      *corev1.Node
		lease     *coordinationv1.Lease
		now       time.Duration
		wantProbe time.Duration
	}{
		{"first sight counts as heard now", nil, node(ready), lease(-time.Hour), 10 * time.Second, 10 * time.Second},
		{"nothing new", prev, node(ready), lease(0), 30 * time.Second, 0},
		{"lease renewed", prev, node(ready), lease(7 * time.Second), 30 * time.Second, 30 * time.Second},
		{"lease renew time older (clock skew) is no news", prev, node(ready), lease(-time.Minute), 30 * time.Second, 0},
		{"ready heartbeat changed", prev, node(readyLater), lease(0), 30 * time.Second, 30 * time.Second},
		{"lease gone, nothing new", prev, node(ready), nil, 30 * time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := observe(tc.prev, tc.node, tc.lease, at(tc.now))
			if !got.probe.Equal(at(tc.wantProbe)) {
				t.Errorf("probe = %v, want %v", got.probe, at(tc.wantProbe))
			}
		})
	}
}

func TestNodeHealth(t *testing.T) {
	const grace, startup = 40 * time.Second, 60 * time.Second
	healthy := node(
		cond(corev1.NodeReady, corev1.ConditionTrue, 0),
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, 0),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, 0),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, 0),
		cond(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, 0),
	)
	unknown := func(typ corev1.NodeConditionType, transition time.Duration) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: corev1.ConditionUnknown, Reason: reasonStatusUnknown, Message: messageStatusUnknown,
			LastHeartbeatTime: *mtime(0), LastTransitionTime: *mtime(transition)}
	}
	never := func(typ corev1.NodeConditionType, transition time.Duration) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: corev1.ConditionUnknown, Reason: reasonStatusNeverUpdated, Message: messageNeverUpdated,
			LastHeartbeatTime: *mtime(-time.Hour), LastTransitionTime: *mtime(transition)}
	}
	silent := []corev1.NodeCondition{
		unknown(corev1.NodeReady, 41*time.Second),
		unknown(corev1.NodeMemoryPressure, 41*time.Second),
		unknown(corev1.NodeDiskPressure, 41*time.Second),
		unknown(corev1.NodePIDPressure, 41*time.Second),
		cond(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, 0),
	}
	for _, tc := range []struct {
		name        string
		node        *corev1.Node
		probe, now  time.Duration
		want        []corev1.NodeCondition
		wantChanged bool
	}{
		{"heard within grace", healthy, 0, 40 * time.Second, healthy.Status.Conditions, false},
		{"silent past grace: Unknown except NetworkUnavailable", healthy, 0, 41 * time.Second, silent, true},
		{"already Unknown: nothing to write", node(silent...), 0, 90 * time.Second, silent, false},
		{"never posted, within startup grace", node(), 0, 59 * time.Second, []corev1.NodeCondition{}, false},
		{"never posted, past startup grace", node(), 0, 61 * time.Second, []corev1.NodeCondition{
			never(corev1.NodeReady, 61*time.Second), never(corev1.NodeMemoryPressure, 61*time.Second),
			never(corev1.NodeDiskPressure, 61*time.Second), never(corev1.NodePIDPressure, 61*time.Second),
		}, true},
		{"ready False from the agent is kept while it talks", node(cond(corev1.NodeReady, corev1.ConditionFalse, 0)), 0, 10 * time.Second,
			[]corev1.NodeCondition{cond(corev1.NodeReady, corev1.ConditionFalse, 0)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.node.DeepCopy()
			got, changed := nodeHealth(tc.node, at(tc.probe), at(tc.now), grace, startup)
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if !apiequality.Semantic.DeepEqual(got, tc.want) {
				t.Errorf("conditions:\n got %+v\nwant %+v", got, tc.want)
			}
			if !apiequality.Semantic.DeepEqual(before, tc.node) {
				t.Error("nodeHealth modified its input")
			}
		})
	}
}

func TestWantTaints(t *testing.T) {
	now := at(time.Minute)
	exec := func(key string, added time.Duration) corev1.Taint {
		return corev1.Taint{Key: key, Effect: corev1.TaintEffectNoExecute, TimeAdded: mtime(added)}
	}
	sched := func(key string) corev1.Taint { return corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule} }
	user := corev1.Taint{Key: "example.com/gpu", Value: "yes", Effect: corev1.TaintEffectNoSchedule}
	withTaints := func(n *corev1.Node, ts ...corev1.Taint) *corev1.Node { n.Spec.Taints = ts; return n }
	ready := func(st corev1.ConditionStatus) corev1.NodeCondition { return cond(corev1.NodeReady, st, 0) }
	for _, tc := range []struct {
		name string
		node *corev1.Node
		want []corev1.Taint
	}{
		{"healthy: none", node(ready(corev1.ConditionTrue)), nil},
		{"unknown: unreachable NoExecute+NoSchedule", node(ready(corev1.ConditionUnknown)),
			[]corev1.Taint{exec(corev1.TaintNodeUnreachable, time.Minute), sched(corev1.TaintNodeUnreachable)}},
		{"false: not-ready", node(ready(corev1.ConditionFalse)),
			[]corev1.Taint{exec(corev1.TaintNodeNotReady, time.Minute), sched(corev1.TaintNodeNotReady)}},
		{"unknown keeps timeAdded and user taints", withTaints(node(ready(corev1.ConditionUnknown)), user, exec(corev1.TaintNodeUnreachable, 0)),
			[]corev1.Taint{user, exec(corev1.TaintNodeUnreachable, 0), sched(corev1.TaintNodeUnreachable)}},
		{"not-ready swapped for unreachable", withTaints(node(ready(corev1.ConditionUnknown)), exec(corev1.TaintNodeNotReady, 0), sched(corev1.TaintNodeNotReady)),
			[]corev1.Taint{exec(corev1.TaintNodeUnreachable, time.Minute), sched(corev1.TaintNodeUnreachable)}},
		{"recovered: managed taints go, user taint stays", withTaints(node(ready(corev1.ConditionTrue)), exec(corev1.TaintNodeUnreachable, 0), user, sched(corev1.TaintNodeUnreachable)),
			[]corev1.Taint{user}},
		{"pressure conditions and cordon", func() *corev1.Node {
			n := node(ready(corev1.ConditionTrue), cond(corev1.NodeMemoryPressure, corev1.ConditionTrue, 0),
				cond(corev1.NodeDiskPressure, corev1.ConditionTrue, 0), cond(corev1.NodePIDPressure, corev1.ConditionTrue, 0),
				cond(corev1.NodeNetworkUnavailable, corev1.ConditionTrue, 0))
			n.Spec.Unschedulable = true
			return n
		}(), []corev1.Taint{sched(corev1.TaintNodeMemoryPressure), sched(corev1.TaintNodeDiskPressure),
			sched(corev1.TaintNodeNetworkUnavailable), sched(corev1.TaintNodePIDPressure), sched(corev1.TaintNodeUnschedulable)}},
		{"no Ready condition yet: no NoExecute taint", node(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := wantTaints(tc.node, now)
			if !apiequality.Semantic.DeepEqual(got, tc.want) {
				t.Errorf("taints:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPodEvictionTime(t *testing.T) {
	secs := func(s int64) *int64 { return &s }
	unreachable := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: mtime(0)}
	notReady := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute, TimeAdded: mtime(10 * time.Second)}
	noTime := corev1.Taint{Key: "example.com/drain", Effect: corev1.TaintEffectNoExecute}
	noSchedule := corev1.Taint{Key: "example.com/gpu", Effect: corev1.TaintEffectNoSchedule}
	tol := func(key string, s *int64) corev1.Toleration {
		return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: s}
	}
	pod := func(tols ...corev1.Toleration) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Tolerations: tols}}
	}
	// A taint without timeAdded counts from when the controller saw it.
	since := func(t corev1.Taint) time.Time {
		if t.TimeAdded != nil {
			return t.TimeAdded.Time
		}
		return at(time.Hour)
	}
	for _, tc := range []struct {
		name      string
		pod       *corev1.Pod
		taints    []corev1.Taint
		onNode    time.Time // zero: on the node since before any taint
		wantEvict bool
		wantAt    time.Time
	}{
		{"no taints", pod(), nil, time.Time{}, false, time.Time{}},
		{"NoSchedule only", pod(), []corev1.Taint{noSchedule}, time.Time{}, false, time.Time{}},
		{"not tolerated: at once", pod(), []corev1.Taint{unreachable}, time.Time{}, true, time.Time{}},
		{"tolerated forever", pod(tol(corev1.TaintNodeUnreachable, nil)), []corev1.Taint{unreachable}, time.Time{}, false, time.Time{}},
		{"tolerated 300s from timeAdded", pod(tol(corev1.TaintNodeUnreachable, secs(300))), []corev1.Taint{unreachable}, time.Time{}, true, at(300 * time.Second)},
		{"tolerationSeconds 0: when added", pod(tol(corev1.TaintNodeUnreachable, secs(0))), []corev1.Taint{unreachable}, time.Time{}, true, at(0)},
		{"negative seconds: when added", pod(tol(corev1.TaintNodeUnreachable, secs(-5))), []corev1.Taint{unreachable}, time.Time{}, true, at(0)},
		{"earliest of several taints", pod(tol(corev1.TaintNodeUnreachable, secs(300)), tol(corev1.TaintNodeNotReady, secs(2))),
			[]corev1.Taint{unreachable, notReady}, time.Time{}, true, at(12 * time.Second)},
		{"one tolerated forever, other not at all", pod(tol(corev1.TaintNodeUnreachable, nil)), []corev1.Taint{unreachable, notReady}, time.Time{}, true, time.Time{}},
		{"wildcard toleration forever (DaemonSet style)", pod(corev1.Toleration{Operator: corev1.TolerationOpExists}), []corev1.Taint{unreachable, noTime}, time.Time{}, false, time.Time{}},
		{"first matching toleration counts", pod(tol(corev1.TaintNodeUnreachable, secs(5)), tol(corev1.TaintNodeUnreachable, nil)),
			[]corev1.Taint{unreachable}, time.Time{}, true, at(5 * time.Second)},
		{"taint without timeAdded: from first sight", pod(tol("example.com/drain", secs(60))), []corev1.Taint{noTime}, time.Time{}, true, at(time.Hour + time.Minute)},
		{"NoSchedule toleration does not help", pod(corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}),
			[]corev1.Taint{unreachable}, time.Time{}, true, time.Time{}},
		{"on the node before the taint: from timeAdded", pod(tol(corev1.TaintNodeUnreachable, secs(300))), []corev1.Taint{unreachable}, at(-time.Hour), true, at(300 * time.Second)},
		{"bound 174s after the taint: full 300s from binding", pod(tol(corev1.TaintNodeUnreachable, secs(300))), []corev1.Taint{unreachable}, at(174 * time.Second), true, at(474 * time.Second)},
		{"bound an hour after the taint: not at once", pod(tol(corev1.TaintNodeUnreachable, secs(300))), []corev1.Taint{unreachable}, at(time.Hour), true, at(time.Hour + 300*time.Second)},
		{"bound after the taint, tolerationSeconds 0: when bound", pod(tol(corev1.TaintNodeUnreachable, secs(0))), []corev1.Taint{unreachable}, at(time.Minute), true, at(time.Minute)},
		{"bound after the taint, not tolerated: at once", pod(), []corev1.Taint{unreachable}, at(time.Minute), true, time.Time{}},
		{"bound between two taints: each from the later time", pod(tol(corev1.TaintNodeUnreachable, secs(300)), tol(corev1.TaintNodeNotReady, secs(2))),
			[]corev1.Taint{unreachable, notReady}, at(5 * time.Second), true, at(12 * time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gotAt, evict := podEvictionTime(tc.pod, tc.taints, since, tc.onNode)
			if evict != tc.wantEvict || !gotAt.Equal(tc.wantAt) {
				t.Errorf("podEvictionTime = %v, %v; want %v, %v", gotAt, evict, tc.wantAt, tc.wantEvict)
			}
		})
	}
}

func TestPodOnNodeSince(t *testing.T) {
	scheduled := func(st corev1.ConditionStatus, ltt time.Duration) corev1.PodCondition {
		return corev1.PodCondition{Type: corev1.PodScheduled, Status: st, LastTransitionTime: *mtime(ltt)}
	}
	pod := func(conds ...corev1.PodCondition) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{CreationTimestamp: *mtime(0)},
			Status:     corev1.PodStatus{Conditions: conds},
		}
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want time.Time
	}{
		{"created with spec.nodeName, no status yet: creation", pod(), at(0)},
		{"bound: when PodScheduled became True", pod(scheduled(corev1.ConditionTrue, time.Minute)), at(time.Minute)},
		{"bound after failing to schedule", pod(scheduled(corev1.ConditionTrue, time.Hour),
			corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: *mtime(2 * time.Hour)}), at(time.Hour)},
		{"PodScheduled False (not bound yet) does not count", pod(scheduled(corev1.ConditionFalse, time.Minute)), at(0)},
		{"PodScheduled before creation (agent clock behind): creation", pod(scheduled(corev1.ConditionTrue, -time.Minute)), at(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := podOnNodeSince(tc.pod); !got.Equal(tc.want) {
				t.Errorf("podOnNodeSince = %v, want %v", got, tc.want)
			}
		})
	}
}
