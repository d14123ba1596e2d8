package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
)

// MaxNodeScore is the best score a single scorer gives a node.
const MaxNodeScore int64 = 100

// scorer rates a feasible node for the pod: score gives a raw value per
// node, normalize maps the raw values of all candidates to 0..MaxNodeScore
// (nil when score already is), and weight is its share in the sum. Weights
// are kube-scheduler's defaults.
type scorer struct {
	name      string
	weight    int64
	score     func(ps *podState, ni *NodeInfo) int64
	normalize func(ps *podState, nodes []*NodeInfo, scores []int64)
	// skip reports that the scorer has nothing to say for this pod.
	skip func(ps *podState) bool
}

var scorers = []scorer{
	{name: "TaintToleration", weight: 3, score: scoreTaintToleration, normalize: normalizeReverse},
	{name: "NodeAffinity", weight: 2, score: scoreNodeAffinity, normalize: normalizeMax,
		skip: func(ps *podState) bool { return ps.preferred == nil }},
	{name: "NodeResourcesFit", weight: 1, score: scoreLeastAllocated},
	{name: "NodeResourcesBalancedAllocation", weight: 1, score: scoreBalancedAllocation},
	{name: "PodTopologySpread", weight: 2, score: scoreTopologySpread, normalize: normalizeTopologySpread,
		skip: func(ps *podState) bool { return ps.spreadScore == nil }},
}

// leastRequested is kube's (capacity - requested) * 100 / capacity.
func leastRequested(requested, capacity int64) int64 {
	if capacity <= 0 || requested > capacity {
		return 0
	}
	return (capacity - requested) * MaxNodeScore / capacity
}

// scoreLeastAllocated favours nodes with more free cpu and memory after
// placing the pod (requests with kube's non-zero defaults), cpu and memory
// weighted equally.
func scoreLeastAllocated(ps *podState, ni *NodeInfo) int64 {
	cpu := leastRequested(ni.NonZeroRequested.MilliCPU+ps.nonZero.MilliCPU, ni.Allocatable.MilliCPU)
	mem := leastRequested(ni.NonZeroRequested.Memory+ps.nonZero.Memory, ni.Allocatable.Memory)
	return (cpu + mem) / 2
}

// scoreBalancedAllocation favours nodes whose cpu and memory would be used
// in similar fractions after placing the pod: (1 - std dev) * 100.
func scoreBalancedAllocation(ps *podState, ni *NodeInfo) int64 {
	var fractions [2]float64
	n := 0
	add := func(req, alloc int64) {
		if alloc == 0 {
			return
		}
		f := float64(req) / float64(alloc)
		if f > 1 {
			f = 1
		}
		fractions[n] = f
		n++
	}
	add(ni.Requested.MilliCPU+ps.req.MilliCPU, ni.Allocatable.MilliCPU)
	add(ni.Requested.Memory+ps.req.Memory, ni.Allocatable.Memory)
	std := 0.0
	if n == 2 {
		std = math.Abs((fractions[0] - fractions[1]) / 2)
	}
	return int64((1 - std) * float64(MaxNodeScore))
}

// scoreNodeAffinity is the sum of the weights of the pod's preferred node
// affinity terms the node matches.
func scoreNodeAffinity(ps *podState, ni *NodeInfo) int64 {
	if ps.preferred == nil {
		return 0
	}
	return ps.preferred.Score(ni.Node)
}

// scoreTaintToleration counts the node's PreferNoSchedule taints the pod
// does not tolerate (fewer is better; normalizeReverse turns it round).
func scoreTaintToleration(ps *podState, ni *NodeInfo) int64 {
	if !ni.hasPreferTaints {
		return 0
	}
	var n int64
	for i := range ni.Node.Spec.Taints {
		t := &ni.Node.Spec.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule && !tolerates(ps.preferTolerations, t) {
			n++
		}
	}
	return n
}

// preferNoScheduleTolerations keeps tolerations that can tolerate a
// PreferNoSchedule taint (empty effect or PreferNoSchedule), as kube does.
func preferNoScheduleTolerations(ts []corev1.Toleration) []corev1.Toleration {
	for _, t := range ts {
		if t.Effect != "" && t.Effect != corev1.TaintEffectPreferNoSchedule {
			out := make([]corev1.Toleration, 0, len(ts))
			for _, t := range ts {
				if t.Effect == "" || t.Effect == corev1.TaintEffectPreferNoSchedule {
					out = append(out, t)
				}
			}
			return out
		}
	}
	return ts
}

// normalizeMax scales scores so the highest becomes MaxNodeScore (kube's
// DefaultNormalizeScore); all zero stays zero.
func normalizeMax(_ *podState, _ []*NodeInfo, scores []int64) {
	var m int64
	for _, s := range scores {
		m = max(m, s)
	}
	if m == 0 {
		return
	}
	for i, s := range scores {
		scores[i] = MaxNodeScore * s / m
	}
}

// normalizeReverse scales like normalizeMax and reverses, so the lowest raw
// value scores MaxNodeScore; all zero become MaxNodeScore.
func normalizeReverse(_ *podState, _ []*NodeInfo, scores []int64) {
	var m int64
	for _, s := range scores {
		m = max(m, s)
	}
	for i, s := range scores {
		if m == 0 {
			scores[i] = MaxNodeScore
			continue
		}
		scores[i] = MaxNodeScore - MaxNodeScore*s/m
	}
}
