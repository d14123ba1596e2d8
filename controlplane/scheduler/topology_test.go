package scheduler

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

// perPodCount is countMatching the straightforward way: every pod of ni.
func perPodCount(ni *NodeInfo, sel labels.Selector, ns string) int {
	n := 0
	for _, pi := range ni.Pods {
		p := pi.Pod
		if p.Namespace == ns && p.DeletionTimestamp == nil && sel.Matches(labels.Set(p.Labels)) {
			n++
		}
	}
	return n
}

// perPodDomainCounts counts, per value of cs[i]'s key, the matching pods of
// the nodes of snap that have all of cs's keys and that cs[i] includes,
// restricted to the domains in only when it is not nil.
func perPodDomainCounts(ps *podState, snap *Snapshot, cs []spreadConstraint, i int, only map[string]int) map[string]int {
	counts := map[string]int{}
	for _, ni := range snap.list {
		if !hasAllKeys(ni.Node, cs) || !cs[i].includes(ps, ni.Node) {
			continue
		}
		v := ni.Node.Labels[cs[i].key]
		if _, ok := only[v]; only != nil && !ok {
			continue
		}
		counts[v] += perPodCount(ni, cs[i].selector, ps.pod.Namespace)
	}
	return counts
}

func pick[T any](rng *rand.Rand, vs ...T) T { return vs[rng.IntN(len(vs))] }

// randomLabels is nil, empty or a mix of app and rev, so that pods share
// label sets (as replicas do) and differ in them.
func randomLabels(rng *rand.Rand) map[string]string {
	switch rng.IntN(6) {
	case 0:
		return nil
	case 1:
		return map[string]string{}
	}
	l := map[string]string{"app": pick(rng, "web", "db")}
	if rng.IntN(2) == 0 {
		l["rev"] = pick(rng, "1", "2")
	}
	if rng.IntN(5) == 0 {
		delete(l, "app")
	}
	return l
}

// randomSpreadNode has random zone, region and tier labels (some missing,
// the hostname label too) and sometimes a NoSchedule taint.
func randomSpreadNode(rng *rand.Rand, name string) *corev1.Node {
	n := makeNode(name)
	for _, kv := range [][]string{
		{"topology.kubernetes.io/zone", "a", "b", "c"},
		{"topology.kubernetes.io/region", "r1", "r2"},
		{"tier", "gold", "silver"},
	} {
		if rng.IntN(6) != 0 {
			n.Labels[kv[0]] = pick(rng, kv[1:]...)
		}
	}
	if rng.IntN(10) == 0 {
		delete(n.Labels, corev1.LabelHostname)
	}
	if rng.IntN(4) == 0 {
		n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule}}
	}
	return n
}

// randomSpreadPod is a pod to schedule with one or two random topology
// spread constraints exercising selectors, matchLabelKeys, minDomains and
// node inclusion policies, sometimes with node affinity and a toleration.
func randomSpreadPod(rng *rand.Rand) *corev1.Pod {
	p := makePod("incoming")
	p.Namespace = pick(rng, "default", "other")
	p.Labels = randomLabels(rng)
	if rng.IntN(3) == 0 {
		requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "tier", Operator: corev1.NodeSelectorOpIn, Values: []string{"gold"}},
		}})(p)
	}
	if rng.IntN(3) == 0 {
		tolerations(corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists})(p)
	}
	honor, ignore := corev1.NodeInclusionPolicyHonor, corev1.NodeInclusionPolicyIgnore
	for range 1 + rng.IntN(2) {
		c := corev1.TopologySpreadConstraint{
			MaxSkew:            int32(1 + rng.IntN(3)),
			TopologyKey:        pick(rng, "topology.kubernetes.io/zone", "topology.kubernetes.io/region", corev1.LabelHostname),
			WhenUnsatisfiable:  pick(rng, corev1.DoNotSchedule, corev1.ScheduleAnyway),
			NodeAffinityPolicy: pick(rng, nil, &honor, &ignore),
			NodeTaintsPolicy:   pick(rng, nil, &honor, &ignore),
			LabelSelector: pick(rng,
				&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}},
				&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"db"}}}},
				&metav1.LabelSelector{}),
		}
		if rng.IntN(3) == 0 {
			c.MatchLabelKeys = []string{"rev"}
		}
		if rng.IntN(3) == 0 {
			d := int32(1 + rng.IntN(5))
			c.MinDomains = &d
		}
		p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, c)
	}
	return p
}

// TestSpreadCountsMatchPerPodCounts checks, on random snapshots changed by
// random pod adds, updates (labels, node, deletion) and removals and node
// removals, that counting by pod group gives what counting every pod does:
// per node for every constraint's selector, and per domain in the filter
// and score states, with their minimum and the ignored nodes.
func TestSpreadCountsMatchPerPodCounts(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		nodeNames := append(names("n", 12), "gone") // "gone" never gets a Node
		snap := NewSnapshot()
		for _, name := range nodeNames[:12] {
			snap.SetNode(randomSpreadNode(rng, name))
		}
		var uids []types.UID
		for step := range 400 {
			switch r := rng.IntN(20); {
			case r < 12 || len(uids) == 0: // a new pod
				uid := types.UID(fmt.Sprint("p", step))
				uids = append(uids, uid)
				fallthrough
			case r < 16: // a new version of a pod: labels, node, namespace or deletion may change
				p := makePod(string(pick(rng, uids...)), onNode(pick(rng, nodeNames...)))
				p.Namespace = pick(rng, "default", "default", "other")
				p.Labels = randomLabels(rng)
				if rng.IntN(6) == 0 {
					now := metav1.Now()
					p.DeletionTimestamp = &now
				}
				snap.AddPod(p)
			case r < 19:
				snap.RemovePod(pick(rng, uids...))
			default: // a node goes or comes back with new labels
				name := pick(rng, nodeNames[:12]...)
				if rng.IntN(2) == 0 {
					snap.RemoveNode(name)
				} else {
					snap.SetNode(randomSpreadNode(rng, name))
				}
			}
			if step%20 == 19 {
				checkSpreadCounts(t, fmt.Sprintf("seed %d step %d", seed, step), rng, snap)
			}
		}
	}
}

func checkSpreadCounts(t *testing.T, at string, rng *rand.Rand, snap *Snapshot) {
	t.Helper()
	ps := newPodState(randomSpreadPod(rng), nil, nil)
	ns := ps.pod.Namespace
	filterCs := spreadConstraints(ps.pod, corev1.DoNotSchedule)
	scoreCs := spreadConstraints(ps.pod, corev1.ScheduleAnyway)
	for _, c := range append(filterCs, scoreCs...) {
		for name, ni := range snap.nodes {
			if got, want := countMatching(ni, c.selector, ns), perPodCount(ni, c.selector, ns); got != want {
				t.Fatalf("%s: node %s, selector %q in %s: countMatching = %d, per pod %d", at, name, c.selector, ns, got, want)
			}
		}
	}

	if st := newSpreadFilterState(ps, snap); st != nil {
		for i, c := range filterCs {
			want := perPodDomainCounts(ps, snap, filterCs, i, nil)
			if !maps.Equal(st.counts[i], want) {
				t.Fatalf("%s: filter counts for %s = %v, per pod %v", at, c.key, st.counts[i], want)
			}
			wantMin := 0
			if int32(len(want)) >= c.minDomains && len(want) > 0 {
				wantMin = math.MaxInt
				for _, n := range want {
					wantMin = min(wantMin, n)
				}
			}
			if st.minMatch[i] != wantMin {
				t.Fatalf("%s: filter minimum for %s = %d, per pod %d (counts %v)", at, c.key, st.minMatch[i], wantMin, want)
			}
		}
	}

	var feasible []*NodeInfo
	for _, ni := range snap.list {
		if rng.IntN(3) != 0 {
			feasible = append(feasible, ni)
		}
	}
	st := newSpreadScoreState(ps, feasible, snap)
	if st == nil {
		return
	}
	for j, ni := range feasible {
		if missing := !hasAllKeys(ni.Node, scoreCs); st.ignored[j] != missing {
			t.Fatalf("%s: node %s ignored = %v, missing a key %v", at, ni.Node.Name, st.ignored[j], missing)
		}
	}
	for i, c := range scoreCs {
		if c.key == corev1.LabelHostname {
			continue // counted per node by countMatching, checked above
		}
		only := map[string]int{}
		for j, ni := range feasible {
			if !st.ignored[j] {
				only[ni.Node.Labels[c.key]] = 0
			}
		}
		want := perPodDomainCounts(ps, snap, scoreCs, i, only)
		maps.Copy(only, want) // domains of candidates without included nodes count 0
		if !maps.Equal(st.counts[i], only) {
			t.Fatalf("%s: score counts for %s = %v, per pod %v", at, c.key, st.counts[i], only)
		}
	}
}
