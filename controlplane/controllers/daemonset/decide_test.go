package daemonset

import (
	"reflect"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func node(name string, labels map[string]string, taints ...corev1.Taint) *corev1.Node {
	return wasmNode(name, labels, taints...)
}

func TestNodeShouldRunDaemonPod(t *testing.T) {
	edge := map[string]string{"role": "edge"}
	affinity := &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
			Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"z1", "z2"},
		}}}},
	}}}
	noWasm := node("n", nil)
	delete(noWasm.Labels, RuntimeClassLabelPrefix+"wasm")
	tests := []struct {
		name           string
		node           *corev1.Node
		mutate         func(*appsv1.DaemonSet)
		rc             *nodev1.RuntimeClass
		run, continue_ bool
	}{
		{name: "plain node", node: node("n", nil), run: true, continue_: true},
		{name: "selector matches", node: node("n", edge), mutate: func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = edge }, run: true, continue_: true},
		{name: "selector does not match", node: node("n", nil), mutate: func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = edge }},
		{name: "affinity matches", node: node("n", map[string]string{"zone": "z2"}), mutate: func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Affinity = affinity }, run: true, continue_: true},
		{name: "affinity does not match", node: node("n", map[string]string{"zone": "z3"}), mutate: func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Affinity = affinity }},
		{name: "no wasm runtime", node: noWasm},
		{name: "runtime class not on node", node: node("n", nil), mutate: func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.RuntimeClassName = new("runc") }},
		{name: "runtime class on node", node: node("n", map[string]string{RuntimeClassLabelPrefix + "runc": "true"}), mutate: func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.RuntimeClassName = new("runc") }, run: true, continue_: true},
		{name: "a class's handler decides", node: node("n", nil), mutate: useClass("oci"), rc: &nodev1.RuntimeClass{Handler: "runc"}},
		{name: "a class's handler on node", node: node("n", map[string]string{RuntimeClassLabelPrefix + "runc": "true"}), mutate: useClass("oci"),
			rc: &nodev1.RuntimeClass{Handler: "runc"}, run: true, continue_: true},
		{name: "a class's node selector matches", node: node("n", edge), mutate: useClass("edge-wasm"),
			rc: &nodev1.RuntimeClass{Handler: "wasm", Scheduling: &nodev1.Scheduling{NodeSelector: edge}}, run: true, continue_: true},
		{name: "a class's node selector does not match", node: node("n", nil), mutate: useClass("edge-wasm"),
			rc: &nodev1.RuntimeClass{Handler: "wasm", Scheduling: &nodev1.Scheduling{NodeSelector: edge}}},
		{name: "a class's tolerations count", node: node("n", nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoSchedule}), mutate: useClass("tolerant"),
			rc:  &nodev1.RuntimeClass{Handler: "wasm", Scheduling: &nodev1.Scheduling{Tolerations: []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}}},
			run: true, continue_: true},
		{name: "NoSchedule taint: no new pod, existing stays", node: node("n", nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoSchedule}), continue_: true},
		{name: "NoExecute taint evicts", node: node("n", nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoExecute})},
		{name: "tolerated taint", node: node("n", nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoExecute}), mutate: func(ds *appsv1.DaemonSet) {
			ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
		}, run: true, continue_: true},
		{name: "not-ready and unreachable are tolerated", node: node("n", nil,
			corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute},
			corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute},
			corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule},
			corev1.Taint{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule}), run: true, continue_: true},
		{name: "template pinned to another node", node: node("n", nil), mutate: func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeName = "other" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := newDaemonSet("ds", nil)
			if tt.mutate != nil {
				tt.mutate(ds)
			}
			run, cont := nodeShouldRunDaemonPod(tt.node, ds, tt.rc)
			if run != tt.run || cont != tt.continue_ {
				t.Errorf("got (%v, %v), want (%v, %v)", run, cont, tt.run, tt.continue_)
			}
		})
	}
}

func useClass(name string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.RuntimeClassName = &name }
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type podOpt func(*corev1.Pod)

func testPod(name, nodeName, hash string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{RevisionHashLabel: hash}, CreationTimestamp: metav1.NewTime(t0)},
		Spec:       corev1.PodSpec{NodeName: nodeName},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func ready(since time.Time) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(since)}}
	}
}

func terminating(p *corev1.Pod) {
	now := metav1.NewTime(t0)
	p.DeletionTimestamp = &now
}

func failed(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }

func createdAt(d time.Duration) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t0.Add(d)) }
}

func names(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPlanManage(t *testing.T) {
	ds := newDaemonSet("ds", map[string]string{"role": "edge"})
	edge := map[string]string{"role": "edge"}
	nodes := []*corev1.Node{
		node("empty", edge),
		node("one", edge),
		node("two", edge),
		node("gone-label", nil),
		node("draining", edge),
		node("failed", edge),
		node("tainted", edge, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoSchedule}),
	}
	byNode := map[string][]*corev1.Pod{
		"one":        {testPod("one-a", "one", "h")},
		"two":        {testPod("two-new", "two", "h", createdAt(time.Second)), testPod("two-old", "two", "h")},
		"gone-label": {testPod("gl", "gone-label", "h")},
		"draining":   {testPod("dr", "draining", "h", terminating)},
		"failed":     {testPod("f", "failed", "h", failed)},
		"tainted":    {testPod("t", "tainted", "h")},
		"deleted":    {testPod("orphan", "deleted", "h")},
	}
	a := planManage(ds, nil, nodes, byNode)
	sort.Strings(a.create)
	if want := []string{"empty", "failed"}; !equal(a.create, want) {
		t.Errorf("create = %v, want %v", a.create, want)
	}
	if want := []string{"gl", "two-new"}; !equal(names(a.del), want) {
		t.Errorf("del = %v, want %v", names(a.del), want)
	}
	if want := []string{"orphan"}; !equal(names(a.forceDel), want) {
		t.Errorf("forceDel = %v, want %v", names(a.forceDel), want)
	}
	if want := []string{"f"}; !equal(names(a.failed), want) {
		t.Errorf("failed = %v, want %v", names(a.failed), want)
	}
}

func TestPlanRollingUpdate(t *testing.T) {
	now := t0.Add(time.Hour)
	nodes := []*corev1.Node{node("a", nil), node("b", nil), node("c", nil), node("d", nil)}
	avail := ready(t0)
	tests := []struct {
		name     string
		maxUnav  *intstr.IntOrString
		minReady int32
		byNode   map[string][]*corev1.Pod
		want     []string
	}{
		{
			name: "one at a time",
			byNode: map[string][]*corev1.Pod{
				"a": {testPod("a", "a", "old", avail)}, "b": {testPod("b", "b", "old", avail)},
				"c": {testPod("c", "c", "old", avail)}, "d": {testPod("d", "d", "old", avail)},
			},
			want: []string{"a"},
		},
		{
			name: "a node mid-replacement uses the budget",
			byNode: map[string][]*corev1.Pod{
				"a": {testPod("a", "a", "old", avail, terminating)}, "b": {testPod("b", "b", "old", avail)},
				"c": {testPod("c", "c", "old", avail)}, "d": {testPod("d", "d", "old", avail)},
			},
		},
		{
			name: "a node without pod uses the budget",
			byNode: map[string][]*corev1.Pod{
				"b": {testPod("b", "b", "old", avail)}, "c": {testPod("c", "c", "old", avail)}, "d": {testPod("d", "d", "old", avail)},
			},
		},
		{
			name: "new pod not ready uses the budget",
			byNode: map[string][]*corev1.Pod{
				"a": {testPod("a2", "a", "new")}, "b": {testPod("b", "b", "old", avail)},
				"c": {testPod("c", "c", "old", avail)}, "d": {testPod("d", "d", "old", avail)},
			},
		},
		{
			name:     "new pod ready but not for minReadySeconds",
			minReady: 30,
			byNode: map[string][]*corev1.Pod{
				"a": {testPod("a2", "a", "new", ready(now.Add(-10*time.Second)))}, "b": {testPod("b", "b", "old", avail)},
				"c": {testPod("c", "c", "old", avail)}, "d": {testPod("d", "d", "old", avail)},
			},
		},
		{
			name: "new pod available frees the budget",
			byNode: map[string][]*corev1.Pod{
				"a": {testPod("a2", "a", "new", avail)}, "b": {testPod("b", "b", "old", avail)},
				"c": {testPod("c", "c", "old", avail)}, "d": {testPod("d", "d", "old", avail)},
			},
			want: []string{"b"},
		},
		{
			name: "unavailable old pods are always replaced",
			byNode: map[string][]*corev1.Pod{
				"a": {testPod("a", "a", "old")}, "b": {testPod("b", "b", "old")},
				"c": {testPod("c", "c", "old", avail)}, "d": {testPod("d", "d", "old", avail)},
			},
			want: []string{"a", "b"},
		},
		{
			name:    "percent rounds up",
			maxUnav: new(intstr.FromString("30%")),
			byNode: map[string][]*corev1.Pod{
				"a": {testPod("a", "a", "old", avail)}, "b": {testPod("b", "b", "old", avail)},
				"c": {testPod("c", "c", "old", avail)}, "d": {testPod("d", "d", "old", avail)},
			},
			want: []string{"a", "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := newDaemonSet("ds", nil)
			ds.Spec.MinReadySeconds = tt.minReady
			ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: tt.maxUnav}}
			got, err := planRollingUpdate(ds, nil, nodes, tt.byNode, "new", now)
			if err != nil {
				t.Fatal(err)
			}
			if g := names(got); !equal(g, tt.want) {
				t.Errorf("delete %v, want %v", g, tt.want)
			}
		})
	}
}

func TestComputeStatus(t *testing.T) {
	now := t0.Add(time.Hour)
	ds := newDaemonSet("ds", map[string]string{"role": "edge"})
	ds.Generation = 4
	ds.Spec.MinReadySeconds = 60
	edge := map[string]string{"role": "edge"}
	nodes := []*corev1.Node{node("a", edge), node("b", edge), node("c", edge), node("d", edge), node("x", nil)}
	byNode := map[string][]*corev1.Pod{
		"a": {testPod("a", "a", "new", ready(t0))},
		"b": {testPod("b", "b", "old", ready(now.Add(-time.Second)))},
		"c": {testPod("c", "c", "new")},
		"x": {testPod("x", "x", "new", ready(t0))},
	}
	st := computeStatus(ds, nil, nodes, byNode, "new", now)
	want := appsv1.DaemonSetStatus{
		ObservedGeneration: 4, DesiredNumberScheduled: 4, CurrentNumberScheduled: 3, NumberMisscheduled: 1,
		NumberReady: 2, NumberAvailable: 1, UpdatedNumberScheduled: 2, NumberUnavailable: 3,
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("status = %+v\nwant     %+v", st, want)
	}
}

func TestTemplateHash(t *testing.T) {
	a := newDaemonSet("ds", nil).Spec.Template
	b := newDaemonSet("ds", nil).Spec.Template
	if TemplateHash(&a) != TemplateHash(&b) {
		t.Error("equal templates hash differently")
	}
	b.Spec.Containers[0].Image = "hello:2"
	if TemplateHash(&a) == TemplateHash(&b) {
		t.Error("different templates hash equally")
	}
}

func TestAddDaemonTolerationsReplacesTolerationSeconds(t *testing.T) {
	spec := &corev1.PodSpec{Tolerations: []corev1.Toleration{
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: new(int64(300))},
		{Key: "custom", Operator: corev1.TolerationOpExists},
	}}
	addDaemonTolerations(spec)
	if len(spec.Tolerations) != 7 {
		t.Fatalf("tolerations: %+v", spec.Tolerations)
	}
	for _, tol := range spec.Tolerations {
		if tol.TolerationSeconds != nil {
			t.Errorf("toleration %+v keeps tolerationSeconds", tol)
		}
	}
}
