package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

// spreadConstraint is a parsed pod.spec.topologySpreadConstraints entry.
type spreadConstraint struct {
	maxSkew       int32
	key           string
	selector      labels.Selector
	minDomains    int32
	honorAffinity bool // nodeAffinityPolicy Honor (the default)
	honorTaints   bool // nodeTaintsPolicy Honor (default Ignore)
}

// spreadConstraints parses pod's constraints with whenUnsatisfiable ==
// action. matchLabelKeys are merged into the selector as kube does.
func spreadConstraints(pod *corev1.Pod, action corev1.UnsatisfiableConstraintAction) []spreadConstraint {
	var out []spreadConstraint
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != action {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			sel = labels.Nothing() // the apiserver validates selectors; a bad one matches no pod
		}
		for _, key := range c.MatchLabelKeys {
			if v, ok := pod.Labels[key]; ok {
				if req, err := labels.NewRequirement(key, selection.In, []string{v}); err == nil {
					sel = sel.Add(*req)
				}
			}
		}
		sc := spreadConstraint{
			maxSkew:       c.MaxSkew,
			key:           c.TopologyKey,
			selector:      sel,
			minDomains:    1,
			honorAffinity: c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor,
			honorTaints:   c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor,
		}
		if c.MinDomains != nil && *c.MinDomains > 0 {
			sc.minDomains = *c.MinDomains
		}
		out = append(out, sc)
	}
	return out
}

// includes reports whether node counts towards c's domains for the pod
// (kube's node inclusion policies).
func (c *spreadConstraint) includes(ps *podState, node *corev1.Node) bool {
	if c.honorAffinity {
		if ok, _ := ps.affinity.Match(node); !ok {
			return false
		}
	}
	if c.honorTaints {
		if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(discard, node.Spec.Taints, ps.pod.Spec.Tolerations, noScheduleOrExecute, false); untolerated {
			return false
		}
	}
	return true
}

func hasAllKeys(node *corev1.Node, cs []spreadConstraint) bool {
	for i := range cs {
		if _, ok := node.Labels[cs[i].key]; !ok {
			return false
		}
	}
	return true
}

// countMatching counts ni's pods in namespace ns, not being deleted, whose
// labels match sel: one match per pod group.
func countMatching(ni *NodeInfo, sel labels.Selector, ns string) int {
	n := 0
	for i := range ni.podGroups {
		g := &ni.podGroups[i]
		if g.namespace == ns && sel.Matches(g.labels) {
			n += g.count
		}
	}
	return n
}

// spreadFilterState holds, per DoNotSchedule constraint, the matching pods
// per topology domain over all eligible nodes, and the global minimum.
type spreadFilterState struct {
	constraints []spreadConstraint
	counts      []map[string]int
	minMatch    []int
	selfMatch   []int
}

// newSpreadFilterState counts over every node of snap; nil when the pod has
// no DoNotSchedule constraints.
func newSpreadFilterState(ps *podState, snap *Snapshot) *spreadFilterState {
	cs := spreadConstraints(ps.pod, corev1.DoNotSchedule)
	if len(cs) == 0 {
		return nil
	}
	st := &spreadFilterState{
		constraints: cs,
		counts:      make([]map[string]int, len(cs)),
		minMatch:    make([]int, len(cs)),
		selfMatch:   make([]int, len(cs)),
	}
	podLabels := labels.Set(ps.pod.Labels)
	for i := range cs {
		st.counts[i] = map[string]int{}
		if cs[i].selector.Matches(podLabels) {
			st.selfMatch[i] = 1
		}
	}
	for _, ni := range snap.list {
		node := ni.Node
		if !hasAllKeys(node, cs) {
			continue
		}
		for i := range cs {
			c := &cs[i]
			if !c.includes(ps, node) {
				continue
			}
			st.counts[i][node.Labels[c.key]] += countMatching(ni, c.selector, ps.pod.Namespace)
		}
	}
	for i := range cs {
		if int32(len(st.counts[i])) < cs[i].minDomains {
			st.minMatch[i] = 0 // fewer domains than minDomains: the global minimum is 0
			continue
		}
		m := math.MaxInt
		for _, n := range st.counts[i] {
			m = min(m, n)
		}
		if m == math.MaxInt {
			m = 0
		}
		st.minMatch[i] = m
	}
	return st
}

// filterTopologySpread rejects nodes where placing the pod would exceed a
// DoNotSchedule constraint's maxSkew ('matching in the node's domain' +
// 'the pod itself if it matches' - 'global minimum' > maxSkew), and nodes
// without a constraint's topology key.
func filterTopologySpread(ps *podState, ni *NodeInfo) []string {
	st := ps.spread
	if st == nil {
		return nil
	}
	for i := range st.constraints {
		c := &st.constraints[i]
		v, ok := ni.Node.Labels[c.key]
		if !ok {
			return reasonsSpreadMissingLabel
		}
		if st.counts[i][v]+st.selfMatch[i]-st.minMatch[i] > int(c.maxSkew) {
			return reasonsSpread
		}
	}
	return nil
}

// spreadScoreState holds, per ScheduleAnyway constraint, the matching pods
// per topology domain of the feasible nodes, and the domain-count weights.
type spreadScoreState struct {
	constraints []spreadConstraint
	// ignored[i] tells that feasible[i] lacks a topology key; indexed by
	// position, as normalizeTopologySpread gets the same nodes, so that
	// scoring looks up no node names.
	ignored []bool
	counts  []map[string]int
	weights []float64
}

// newSpreadScoreState prepares topology scoring among feasible; nil when the
// pod has no ScheduleAnyway constraints.
func newSpreadScoreState(ps *podState, feasible []*NodeInfo, snap *Snapshot) *spreadScoreState {
	cs := spreadConstraints(ps.pod, corev1.ScheduleAnyway)
	if len(cs) == 0 {
		return nil
	}
	st := &spreadScoreState{
		constraints: cs,
		ignored:     make([]bool, len(feasible)),
		counts:      make([]map[string]int, len(cs)),
		weights:     make([]float64, len(cs)),
	}
	sizes := make([]int, len(cs))
	for i := range cs {
		st.counts[i] = map[string]int{}
	}
	ignored := 0
	for j, ni := range feasible {
		if !hasAllKeys(ni.Node, cs) {
			st.ignored[j] = true
			ignored++
			continue
		}
		for i := range cs {
			if cs[i].key == corev1.LabelHostname {
				continue
			}
			v := ni.Node.Labels[cs[i].key]
			if _, ok := st.counts[i][v]; !ok {
				st.counts[i][v] = 0
				sizes[i]++
			}
		}
	}
	for i := range cs {
		if cs[i].key == corev1.LabelHostname {
			sizes[i] = len(feasible) - ignored
		}
		st.weights[i] = math.Log(float64(sizes[i] + 2))
	}
	for _, ni := range snap.list {
		if !hasAllKeys(ni.Node, cs) {
			continue
		}
		for i := range cs {
			c := &cs[i]
			if c.key == corev1.LabelHostname || !c.includes(ps, ni.Node) {
				continue
			}
			v := ni.Node.Labels[c.key]
			if _, ok := st.counts[i][v]; !ok {
				continue // a domain without candidates does not matter
			}
			st.counts[i][v] += countMatching(ni, c.selector, ps.pod.Namespace)
		}
	}
	return st
}

// scoreTopologySpread is the raw spread score (more matching pods in the
// node's domains is higher; normalizeTopologySpread reverses it and zeroes
// ignored nodes whatever their raw score).
func scoreTopologySpread(ps *podState, ni *NodeInfo) int64 {
	st := ps.spreadScore
	if st == nil {
		return 0
	}
	var score float64
	for i := range st.constraints {
		c := &st.constraints[i]
		v, ok := ni.Node.Labels[c.key]
		if !ok {
			continue
		}
		var cnt int
		if c.key == corev1.LabelHostname {
			cnt = countMatching(ni, c.selector, ps.pod.Namespace)
		} else {
			cnt = st.counts[i][v]
		}
		score += float64(cnt)*st.weights[i] + float64(c.maxSkew-1)
	}
	return int64(math.Round(score))
}

// normalizeTopologySpread maps raw spread scores to 0..100, fewest matching
// pods highest; ignored nodes (missing a topology key) get 0.
func normalizeTopologySpread(ps *podState, _ []*NodeInfo, scores []int64) {
	st := ps.spreadScore
	if st == nil {
		clear(scores)
		return
	}
	minScore, maxScore := int64(math.MaxInt64), int64(0)
	for i, s := range scores {
		if st.ignored[i] {
			continue
		}
		minScore = min(minScore, s)
		maxScore = max(maxScore, s)
	}
	for i, s := range scores {
		switch {
		case st.ignored[i]:
			scores[i] = 0
		case maxScore == 0:
			scores[i] = MaxNodeScore
		default:
			scores[i] = MaxNodeScore * (maxScore + minScore - s) / maxScore
		}
	}
}
