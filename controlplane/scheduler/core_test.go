package scheduler

import (
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestFitErrorMessage(t *testing.T) {
	many := func(n int, prefix string, opts ...func(*corev1.Node)) []*corev1.Node {
		out := make([]*corev1.Node, n)
		for i, name := range names(prefix, n) {
			out[i] = makeNode(name, opts...)
		}
		return out
	}
	cases := []struct {
		name  string
		nodes []*corev1.Node
		pod   *corev1.Pod
		want  string
	}{
		{
			name: "the issue's example",
			nodes: append(many(3, "hdd", nodeLabels("disk", "hdd")),
				many(2, "ssd", nodeLabels("disk", "ssd"), nodeAlloc("4", "1Gi", "110"))...),
			pod:  makePod("p", nodeSelector("disk", "ssd"), requests("", "2Gi")),
			want: "0/5 nodes are available: 2 Insufficient memory, 3 node(s) didn't match Pod's node affinity/selector.",
		},
		{
			name:  "one node, several resources short",
			nodes: many(1, "n", nodeAlloc("1", "1Gi", "110")),
			pod:   makePod("p", requests("2", "2Gi")),
			want:  "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.",
		},
		{
			name: "sorted as strings, as kube sorts",
			nodes: append(many(10, "c", cordoned),
				many(2, "t", nodeTaints(corev1.Taint{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}))...),
			pod:  makePod("p"),
			want: "0/12 nodes are available: 10 node(s) were unschedulable, 2 node(s) had untolerated taint {k: v}.",
		},
		{
			name:  "runtime class",
			nodes: many(2, "n", func(n *corev1.Node) { delete(n.Labels, RuntimeClassLabelPrefix+"wasm") }),
			pod:   makePod("p"),
			want:  `0/2 nodes are available: 2 node(s) didn't support runtime class "wasm".`,
		},
		{
			name: "every kind of reason",
			nodes: []*corev1.Node{
				makeNode("cordoned", cordoned),
				makeNode("notready", nodeReady(corev1.ConditionFalse)),
				makeNode("tainted", nodeTaints(corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoExecute})),
				makeNode("label", nodeLabels("disk", "hdd")),
				makeNode("full", nodeAlloc("4", "8Gi", "0")),
				makeNode("nowasm", func(n *corev1.Node) { delete(n.Labels, RuntimeClassLabelPrefix+"wasm") }),
				makeNode("nozone", nodeLabels("disk", "ssd")),
			},
			pod: makePod("p", requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "disk", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"hdd"}}}}),
				spread("zone", 1, corev1.DoNotSchedule, map[string]string{"a": "b"})),
			want: "0/7 nodes are available: 1 Too many pods, 1 node(s) didn't match Pod's node affinity/selector, " +
				"1 node(s) didn't match pod topology spread constraints (missing required label), " +
				`1 node(s) didn't support runtime class "wasm", 1 node(s) had untolerated taint {k: }, ` +
				"1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable.",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := seededCore(CoreOptions{}).Schedule(tc.pod, snapshotOf(tc.nodes))
			var fe *FitError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a FitError", err)
			}
			if got := fe.Error(); got != tc.want {
				t.Errorf("message\n got %q\nwant %q", got, tc.want)
			}
			if fe.NumAllNodes != len(tc.nodes) || len(fe.NodeReasons) != len(tc.nodes) {
				t.Errorf("NumAllNodes %d, NodeReasons for %d nodes; want %d", fe.NumAllNodes, len(fe.NodeReasons), len(tc.nodes))
			}
		})
	}
}

func TestFitErrorNodeReasons(t *testing.T) {
	nodes := []*corev1.Node{makeNode("cordoned", cordoned), makeNode("small", nodeAlloc("1", "1Gi", "110"))}
	_, err := seededCore(CoreOptions{}).Schedule(makePod("p", requests("2", "")), snapshotOf(nodes))
	var fe *FitError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v", err)
	}
	if got := fmt.Sprint(fe.NodeReasons); got != "map[cordoned:[node(s) were unschedulable] small:[Insufficient cpu]]" {
		t.Errorf("NodeReasons = %s", got)
	}
}

func TestNoNodes(t *testing.T) {
	_, err := seededCore(CoreOptions{}).Schedule(makePod("p"), NewSnapshot())
	if !errors.Is(err, ErrNoNodesAvailable) || err.Error() != "no nodes available to schedule pods" {
		t.Errorf("err = %v", err)
	}
}

func TestNumFeasibleNodesToFind(t *testing.T) {
	cases := []struct {
		percentage int32
		nodes      int
		want       int
	}{
		{0, 10, 10},
		{0, 99, 99},
		{0, 100, 100}, // 49% of 100 < 100
		{0, 250, 120}, // 48%
		{0, 1000, 420},
		{0, 5000, 500},  // 10%
		{0, 6000, 300},  // 50-48=2% -> 5%
		{0, 10000, 500}, // 5%
		{0, 1500, 570},  // 38%
		{30, 1000, 300},
		{1, 1000, 100}, // never below 100
		{100, 5000, 5000},
	}
	for _, tc := range cases {
		if got := numFeasibleNodesToFind(tc.percentage, tc.nodes); got != tc.want {
			t.Errorf("numFeasibleNodesToFind(%d, %d) = %d, want %d", tc.percentage, tc.nodes, got, tc.want)
		}
	}
}

func TestScheduleSamplesAndRotates(t *testing.T) {
	var nodes []*corev1.Node
	for _, n := range names("n", 1000) {
		nodes = append(nodes, makeNode(n))
	}
	snap := snapshotOf(nodes)
	c := seededCore(CoreOptions{})
	first := map[string]bool{}
	for _, ni := range snap.list[:420] {
		first[ni.Node.Name] = true
	}
	got, err := c.Schedule(makePod("p"), snap)
	if err != nil {
		t.Fatal(err)
	}
	if !first[got] {
		t.Errorf("picked %s, not among the first 420 nodes searched", got)
	}
	if c.next != 420 {
		t.Errorf("next search starts at %d, want 420", c.next)
	}
	got, _ = c.Schedule(makePod("q"), snap)
	if first[got] {
		t.Errorf("second pod picked %s from the first window again", got)
	}
	if c.next != 840 {
		t.Errorf("next = %d, want 840", c.next)
	}

	// A lone feasible node is found wherever it is; then every node is seen.
	for _, ni := range snap.list {
		ni.Node = makeNode(ni.Node.Name, nodeLabels("disk", "hdd"))
	}
	lone := snap.list[500].Node.Name
	snap.SetNode(makeNode(lone, nodeLabels("disk", "ssd")))
	got, err = c.Schedule(makePod("r", nodeSelector("disk", "ssd")), snap)
	if err != nil || got != lone {
		t.Errorf("Schedule = %q, %v; want %s", got, err, lone)
	}
}

func TestScheduleChoosesBest(t *testing.T) {
	zone := "topology.kubernetes.io/zone"
	cases := []struct {
		name  string
		nodes []*corev1.Node
		pods  []*corev1.Pod
		pod   *corev1.Pod
		want  string
	}{
		{
			name:  "least allocated",
			nodes: []*corev1.Node{makeNode("busy"), makeNode("idle")},
			pods:  []*corev1.Pod{makePod("x", onNode("busy"), requests("2", "4Gi"))},
			pod:   makePod("p", requests("500m", "1Gi")),
			want:  "idle",
		},
		{
			name:  "preferred affinity outweighs a little load",
			nodes: []*corev1.Node{makeNode("ssd", nodeLabels("disk", "ssd")), makeNode("idle")},
			pods:  []*corev1.Pod{makePod("x", onNode("ssd"), requests("500m", "1Gi"))},
			pod: makePod("p", preferredAffinity(corev1.PreferredSchedulingTerm{Weight: 1, Preference: corev1.NodeSelectorTerm{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"ssd"}}}}})),
			want: "ssd",
		},
		{
			name:  "PreferNoSchedule avoided",
			nodes: []*corev1.Node{makeNode("soft", nodeTaints(corev1.Taint{Key: "x", Effect: corev1.TaintEffectPreferNoSchedule})), makeNode("plain")},
			pods:  []*corev1.Pod{makePod("x", onNode("plain"), requests("1", "2Gi"))},
			pod:   makePod("p"),
			want:  "plain",
		},
		{
			name:  "spread to the emptiest zone",
			nodes: []*corev1.Node{makeNode("a1", nodeLabels(zone, "a")), makeNode("b1", nodeLabels(zone, "b"))},
			pods: []*corev1.Pod{
				makePod("w1", onNode("b1"), podLabels("app", "web")),
				makePod("x", onNode("a1"), requests("1", "2Gi")),
			},
			pod:  makePod("p", podLabels("app", "web"), spread(zone, 1, corev1.ScheduleAnyway, map[string]string{"app": "web"})),
			want: "a1",
		},
		{
			name:  "the only feasible node",
			nodes: []*corev1.Node{makeNode("a", cordoned), makeNode("b")},
			pod:   makePod("p"),
			want:  "b",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 20 { // random tie-breaking must not matter
				got, err := NewCore(CoreOptions{}).Schedule(tc.pod, snapshotOf(tc.nodes, tc.pods...))
				if err != nil || got != tc.want {
					t.Fatalf("Schedule = %q, %v; want %q", got, err, tc.want)
				}
			}
		})
	}
}

func TestScheduleBreaksTiesRandomly(t *testing.T) {
	nodes := []*corev1.Node{makeNode("a"), makeNode("b"), makeNode("c")}
	snap := snapshotOf(nodes)
	c := seededCore(CoreOptions{})
	counts := map[string]int{}
	for i := range 300 {
		got, err := c.Schedule(makePod(fmt.Sprint("p", i)), snap) // not assumed: always a three-way tie
		if err != nil {
			t.Fatal(err)
		}
		counts[got]++
	}
	for _, n := range nodes {
		if counts[n.Name] < 60 {
			t.Errorf("ties not spread: %v", counts)
		}
	}
}

func TestScheduleWithAssumeSpreadsEvenly(t *testing.T) {
	var nodes []*corev1.Node
	for _, n := range names("n", 10) {
		nodes = append(nodes, makeNode(n, nodeAlloc("1", "1Gi", "110")))
	}
	snap := snapshotOf(nodes)
	c := seededCore(CoreOptions{})
	for i := range 100 {
		p := makePod(fmt.Sprint("p", i), requests("100m", "100Mi"))
		got, err := c.Schedule(p, snap)
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
		p.Spec.NodeName = got
		snap.AddPod(p)
	}
	for _, n := range nodes {
		if got := len(snap.Get(n.Name).Pods); got != 10 {
			t.Errorf("node %s has %d pods, want 10", n.Name, got)
		}
	}
	// The cluster is now full: the next pod gets the full picture.
	_, err := c.Schedule(makePod("extra", requests("100m", "")), snap)
	if err == nil || err.Error() != "0/10 nodes are available: 10 Insufficient cpu." {
		t.Errorf("err = %v", err)
	}
}
