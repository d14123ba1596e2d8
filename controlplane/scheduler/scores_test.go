package scheduler

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// scoresOf runs the named scorer (score + normalize) for pod over nodes,
// all taken as feasible, in order.
func scoresOf(t *testing.T, name string, pod *corev1.Pod, nodes []*corev1.Node, pods ...*corev1.Pod) []int64 {
	t.Helper()
	snap := snapshotOf(nodes, pods...)
	ps := newPodState(pod, nil, nil)
	feasible := make([]*NodeInfo, len(nodes))
	for i, n := range nodes {
		feasible[i] = snap.Get(n.Name)
	}
	ps.spreadScore = newSpreadScoreState(ps, feasible, snap)
	for _, s := range scorers {
		if s.name != name {
			continue
		}
		out := make([]int64, len(feasible))
		for i, ni := range feasible {
			out[i] = s.score(ps, ni)
		}
		if s.normalize != nil {
			s.normalize(ps, feasible, out)
		}
		return out
	}
	t.Fatalf("no scorer %q", name)
	return nil
}

func TestScores(t *testing.T) {
	zone := "topology.kubernetes.io/zone"
	app := map[string]string{"app": "web"}
	web := func(name, node string) *corev1.Pod { return makePod(name, onNode(node), podLabels("app", "web")) }
	prefer := func(weight int32, key, value string) corev1.PreferredSchedulingTerm {
		return corev1.PreferredSchedulingTerm{Weight: weight, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: key, Operator: corev1.NodeSelectorOpIn, Values: []string{value}}}}}
	}
	soft := func(key string) corev1.Taint {
		return corev1.Taint{Key: key, Effect: corev1.TaintEffectPreferNoSchedule}
	}
	cases := []struct {
		name   string
		scorer string
		nodes  []*corev1.Node
		pods   []*corev1.Pod
		pod    *corev1.Pod
		want   []int64
	}{
		{
			name: "least allocated", scorer: "NodeResourcesFit",
			nodes: []*corev1.Node{makeNode("empty"), makeNode("half")},
			pods:  []*corev1.Pod{makePod("x", onNode("half"), requests("2", "4Gi"))},
			pod:   makePod("p", requests("1", "2Gi")),
			// empty: (4-1)/4=75 both; half: (4-3)/4=25 both
			want: []int64{75, 25},
		},
		{
			name: "least allocated counts missing requests as 100m/200Mi", scorer: "NodeResourcesFit",
			nodes: []*corev1.Node{makeNode("empty")},
			pod:   makePod("p"),
			// cpu 3900*100/4000=97, memory (8192-200)*100/8192=97
			want: []int64{97},
		},
		{
			name: "least allocated, overcommitted is 0", scorer: "NodeResourcesFit",
			nodes: []*corev1.Node{makeNode("small", nodeAlloc("1", "1Gi", "10"))},
			pod:   makePod("p", requests("2", "2Gi")),
			want:  []int64{0},
		},
		{
			name: "balanced allocation", scorer: "NodeResourcesBalancedAllocation",
			nodes: []*corev1.Node{makeNode("a"), makeNode("b")},
			pods:  []*corev1.Pod{makePod("x", onNode("b"), requests("1", ""))},
			pod:   makePod("p", requests("1", "2Gi")),
			// a: .25/.25 -> 100; b: .5/.25 -> std .125 -> 87
			want: []int64{100, 87},
		},
		{
			name: "preferred node affinity", scorer: "NodeAffinity",
			nodes: []*corev1.Node{makeNode("both", nodeLabels(zone, "a", "disk", "ssd")), makeNode("zone", nodeLabels(zone, "a")), makeNode("none")},
			pod:   makePod("p", preferredAffinity(prefer(10, zone, "a"), prefer(5, "disk", "ssd"))),
			// 15, 10, 0 normalized to the max
			want: []int64{100, 66, 0},
		},
		{
			name: "no preferences", scorer: "NodeAffinity",
			nodes: []*corev1.Node{makeNode("a"), makeNode("b")},
			pod:   makePod("p"),
			want:  []int64{0, 0},
		},
		{
			name: "PreferNoSchedule taints", scorer: "TaintToleration",
			nodes: []*corev1.Node{makeNode("two", nodeTaints(soft("x"), soft("y"))), makeNode("one", nodeTaints(soft("x"))), makeNode("none")},
			pod:   makePod("p"),
			want:  []int64{0, 50, 100},
		},
		{
			name: "tolerated PreferNoSchedule taints", scorer: "TaintToleration",
			nodes: []*corev1.Node{makeNode("two", nodeTaints(soft("x"), soft("y"))), makeNode("one", nodeTaints(soft("x")))},
			pod:   makePod("p", tolerations(corev1.Toleration{Key: "x", Operator: corev1.TolerationOpExists})),
			want:  []int64{0, 100},
		},
		{
			name: "NoSchedule tolerations do not tolerate PreferNoSchedule", scorer: "TaintToleration",
			nodes: []*corev1.Node{makeNode("one", nodeTaints(soft("x"))), makeNode("none")},
			pod:   makePod("p", tolerations(corev1.Toleration{Key: "x", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})),
			want:  []int64{0, 100},
		},
		{
			name: "topology spread, fewest matching pods best", scorer: "PodTopologySpread",
			nodes: []*corev1.Node{makeNode("a1", nodeLabels(zone, "a")), makeNode("b1", nodeLabels(zone, "b")), makeNode("c1", nodeLabels(zone, "c")), makeNode("nozone")},
			pods:  []*corev1.Pod{web("w1", "a1"), web("w2", "a1"), web("w3", "b1")},
			pod:   makePod("p", podLabels("app", "web"), spread(zone, 1, corev1.ScheduleAnyway, app)),
			// raw = count*ln(3+2): a 3, b 2, c 0 -> 100*(3+0-s)/3; nozone ignored
			want: []int64{0, 33, 100, 0},
		},
		{
			name: "topology spread by hostname", scorer: "PodTopologySpread",
			nodes: []*corev1.Node{makeNode("n1"), makeNode("n2"), makeNode("n3")},
			pods:  []*corev1.Pod{web("w1", "n1"), web("w2", "n1"), web("w3", "n2")},
			pod:   makePod("p", podLabels("app", "web"), spread(corev1.LabelHostname, 1, corev1.ScheduleAnyway, app)),
			// raw = count*ln(3+2): 2->3, 1->2, 0->0
			want: []int64{0, 33, 100},
		},
		{
			name: "topology spread, nothing matching", scorer: "PodTopologySpread",
			nodes: []*corev1.Node{makeNode("a1", nodeLabels(zone, "a")), makeNode("b1", nodeLabels(zone, "b"))},
			pod:   makePod("p", podLabels("app", "web"), spread(zone, 1, corev1.ScheduleAnyway, app)),
			want:  []int64{100, 100},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := scoresOf(t, tc.scorer, tc.pod, tc.nodes, tc.pods...)
			if !slices.Equal(got, tc.want) {
				t.Errorf("scores = %v, want %v", got, tc.want)
			}
			for _, s := range got {
				if s < 0 || s > MaxNodeScore {
					t.Errorf("score %d outside 0..%d", s, MaxNodeScore)
				}
			}
		})
	}
}
