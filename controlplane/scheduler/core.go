package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ErrNoNodesAvailable is kube-scheduler's error when the cluster has no
// nodes at all.
var ErrNoNodesAvailable = errors.New("no nodes available to schedule pods")

// FitError says that no node can run Pod, with every node's reasons.
type FitError struct {
	Pod         *corev1.Pod
	NumAllNodes int
	// NodeReasons maps each node to the reasons it was rejected (from the
	// first filter that rejected it).
	NodeReasons map[string][]string
}

// Error is kube-scheduler's message: "0/5 nodes are available: 2
// Insufficient memory, 3 node(s) didn't match Pod's node affinity/selector."
// with the reason counts sorted as strings, as kube sorts them.
func (f *FitError) Error() string {
	counts := map[string]int{}
	for _, rs := range f.NodeReasons {
		for _, r := range rs {
			counts[r]++
		}
	}
	parts := make([]string, 0, len(counts))
	for r, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	msg := fmt.Sprintf("0/%d nodes are available:", f.NumAllNodes)
	if len(parts) > 0 {
		msg += " " + strings.Join(parts, ", ") + "."
	}
	return msg
}

// Kube-scheduler's sampling bounds (minFeasibleNodesToFind and
// minFeasibleNodesPercentageToFind).
const (
	minFeasibleNodesToFind           = 100
	minFeasibleNodesPercentageToFind = 5
)

// numFeasibleNodesToFind is how many feasible nodes to find before scoring
// (kube's percentageOfNodesToScore): all of a small cluster, otherwise
// percentage of the nodes, adaptive when 0 (50% - nodes/125, at least 5%),
// and never fewer than 100.
func numFeasibleNodesToFind(percentage int32, numAllNodes int) int {
	if numAllNodes < minFeasibleNodesToFind {
		return numAllNodes
	}
	if percentage <= 0 {
		percentage = int32(50 - numAllNodes/125)
		if percentage < minFeasibleNodesPercentageToFind {
			percentage = minFeasibleNodesPercentageToFind
		}
	}
	if percentage >= 100 {
		return numAllNodes
	}
	n := numAllNodes * int(percentage) / 100
	if n < minFeasibleNodesToFind {
		return minFeasibleNodesToFind
	}
	return n
}

// CoreOptions configures a Core.
type CoreOptions struct {
	// PercentageOfNodesToScore caps the feasible nodes scored per pod as a
	// percentage of all nodes; 0 is kube's adaptive default, 100 scores all.
	PercentageOfNodesToScore int32
	// ImageArchitectures looks up container images' architectures; nil
	// turns the image architecture filter off.
	ImageArchitectures ImageArchitectures
	// RuntimeHandlers maps runtime classes to their handlers; nil: a
	// class runs on the handler of its name.
	RuntimeHandlers RuntimeHandlers
	// Rand breaks ties between equally scored nodes; nil seeds one randomly.
	Rand *rand.Rand
}

// Core is the scheduling decision: filters and scores over a Snapshot. It
// keeps where the next search starts (so successive pods look at different
// nodes first) and scratch buffers, so it is not safe for concurrent use;
// the Scheduler calls it from its one scheduling loop.
type Core struct {
	percentage int32
	images     ImageArchitectures
	handlers   RuntimeHandlers
	rnd        *rand.Rand
	next       int

	feasible []*NodeInfo
	rejected []rejection
	raw      []int64
	totals   []int64
}

// rejection is a node a filter rejected, with the reasons.
type rejection struct {
	ni      *NodeInfo
	reasons []string
}

// NewCore returns a Core.
func NewCore(opts CoreOptions) *Core {
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &Core{percentage: opts.PercentageOfNodesToScore, images: opts.ImageArchitectures, handlers: opts.RuntimeHandlers, rnd: rnd}
}

// Schedule picks the node for pod in snap. It filters nodes, starting
// after where the previous call stopped, until enough feasible ones are
// found (numFeasibleNodesToFind) or all were seen, scores the feasible
// ones and returns the best, ties broken at random. When no node fits it
// returns a *FitError (or ErrNoNodesAvailable for an empty snapshot). snap
// is only read.
func (c *Core) Schedule(pod *corev1.Pod, snap *Snapshot) (string, error) {
	n := len(snap.list)
	if n == 0 {
		return "", ErrNoNodesAvailable
	}
	ps := newPodState(pod, c.images, c.handlers)
	ps.spread = newSpreadFilterState(ps, snap)

	want := numFeasibleNodesToFind(c.percentage, n)
	feasible, rejected := c.feasible[:0], c.rejected[:0]
	start := c.next % n
	processed := 0
	for processed < n && len(feasible) < want {
		ni := snap.list[(start+processed)%n]
		processed++
		if reasons := runFilters(ps, ni); reasons != nil {
			rejected = append(rejected, rejection{ni, reasons})
			continue
		}
		feasible = append(feasible, ni)
	}
	c.next = (start + processed) % n
	defer func() {
		clear(feasible) // drop references until the next call
		clear(rejected)
		c.feasible, c.rejected = feasible[:0], rejected[:0]
	}()
	switch len(feasible) {
	case 0:
		fit := &FitError{Pod: pod, NumAllNodes: n, NodeReasons: make(map[string][]string, len(rejected))}
		for _, r := range rejected {
			fit.NodeReasons[r.ni.Node.Name] = r.reasons
		}
		return "", fit
	case 1:
		return feasible[0].Node.Name, nil
	}
	totals := c.score(ps, feasible, snap)
	best, bestScore, ties := 0, totals[0], 1
	for i := 1; i < len(totals); i++ {
		switch t := totals[i]; {
		case t > bestScore:
			best, bestScore, ties = i, t, 1
		case t == bestScore:
			ties++
			if c.rnd.IntN(ties) == 0 { // reservoir sampling: each tie equally likely
				best = i
			}
		}
	}
	return feasible[best].Node.Name, nil
}

// score returns the weighted sum of all scorers per feasible node.
func (c *Core) score(ps *podState, feasible []*NodeInfo, snap *Snapshot) []int64 {
	ps.spreadScore = newSpreadScoreState(ps, feasible, snap)
	c.totals = resize(c.totals, len(feasible))
	c.raw = resize(c.raw, len(feasible))
	totals, raw := c.totals, c.raw
	for _, s := range scorers {
		if s.skip != nil && s.skip(ps) {
			continue
		}
		for i, ni := range feasible {
			raw[i] = s.score(ps, ni)
		}
		if s.normalize != nil {
			s.normalize(ps, feasible, raw)
		}
		for i := range raw {
			totals[i] += s.weight * raw[i]
		}
	}
	return totals
}

// resize returns a zeroed slice of length n, reusing b's array.
func resize(b []int64, n int) []int64 {
	if cap(b) < n {
		return make([]int64, n)
	}
	b = b[:n]
	clear(b)
	return b
}
