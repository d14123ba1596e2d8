package podgc

import (
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// This file holds the collector's decisions as pure functions of a
// snapshot of pods and nodes, as gcTerminated, gcTerminating, gcOrphaned
// and gcUnscheduledTerminating of Kubernetes' pod garbage collector decide.

// evictedReason is the status reason of a pod the node agent evicted
// (kubelet's eviction.Reason).
const evictedReason = "Evicted"

// isTerminated reports whether the pod finished: phase Failed or
// Succeeded.
func isTerminated(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}

// blockedOnFinalizers reports whether only finalizers keep the pod: it
// finished, its deletion was accepted with grace period 0, and finalizers
// remain. Deleting it again changes nothing, so the collector leaves it
// alone (it still counts against the terminated threshold), as Kubernetes'
// isPodBlockedOnFinalizers.
func blockedOnFinalizers(p *corev1.Pod) bool {
	g := p.DeletionGracePeriodSeconds
	return isTerminated(p) && p.DeletionTimestamp != nil && g != nil && *g == 0 && len(p.Finalizers) > 0
}

// byEvictionAndCreation orders pods as the collector deletes them: pods the
// node agent evicted first (they are not the finished pods of a controller
// someone may want to read), then the oldest by creationTimestamp, then by
// namespace and name.
func byEvictionAndCreation(a, b *corev1.Pod) int {
	ae := a.Status.Phase == corev1.PodFailed && a.Status.Reason == evictedReason
	be := b.Status.Phase == corev1.PodFailed && b.Status.Reason == evictedReason
	if ae != be {
		if ae {
			return -1
		}
		return 1
	}
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// terminatedToDelete returns the finished pods beyond threshold, in the
// order they go (byEvictionAndCreation): the number of finished pods less
// threshold, of those not blocked on finalizers. A threshold of 0 or less
// disables it (nil), as Kubernetes' --terminated-pod-gc-threshold.
func terminatedToDelete(pods []*corev1.Pod, threshold int) []*corev1.Pod {
	if threshold <= 0 {
		return nil
	}
	var terminated, candidates []*corev1.Pod
	for _, p := range pods {
		if !isTerminated(p) {
			continue
		}
		terminated = append(terminated, p)
		if !blockedOnFinalizers(p) {
			candidates = append(candidates, p)
		}
	}
	n := min(len(terminated)-threshold, len(candidates))
	if n <= 0 {
		return nil
	}
	slices.SortFunc(candidates, byEvictionAndCreation)
	return candidates[:n]
}

// isNodeReady reports whether the node's Ready condition is True.
func isNodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// outOfService reports whether the node is not Ready and carries the
// node.kubernetes.io/out-of-service taint (any value, any effect): an
// administrator has declared it shut down for good, so its terminating
// pods will never be confirmed gone by its agent.
func outOfService(n *corev1.Node) bool {
	if isNodeReady(n) {
		return false
	}
	return slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeOutOfService })
}

// terminatingOutOfService returns the pods being deleted on a node that is
// out of service (node looks a node up by name), in deletion order.
func terminatingOutOfService(pods []*corev1.Pod, node func(name string) (*corev1.Node, bool)) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil || p.Spec.NodeName == "" || blockedOnFinalizers(p) {
			continue
		}
		if n, ok := node(p.Spec.NodeName); ok && outOfService(n) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, byEvictionAndCreation)
	return out
}

// unscheduledTerminating returns the pods being deleted that were never
// bound to a node: no agent will ever finish their deletion.
func unscheduledTerminating(pods []*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp != nil && p.Spec.NodeName == "" && !blockedOnFinalizers(p) {
			out = append(out, p)
		}
	}
	return out
}

// missingNodes returns the names of the nodes pods are bound to that are
// not among existing.
func missingNodes(pods []*corev1.Pod, existing sets.Set[string]) sets.Set[string] {
	out := sets.New[string]()
	for _, p := range pods {
		if p.Spec.NodeName != "" && !existing.Has(p.Spec.NodeName) {
			out.Insert(p.Spec.NodeName)
		}
	}
	return out
}

// orphaned returns the pods bound to one of the deleted nodes.
func orphaned(pods []*corev1.Pod, deleted sets.Set[string]) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if deleted.Has(p.Spec.NodeName) && !blockedOnFinalizers(p) {
			out = append(out, p)
		}
	}
	return out
}

// quarantine holds the nodes that pods are bound to but the node informer
// does not know, each with when its quarantine ends: a node may be missing
// from the informer only because the informer lags (a node just created),
// so a node is taken for deleted only if it is still missing when its
// quarantine ends and the API confirms it, as Kubernetes' delaying queue of
// such nodes. Not safe for concurrent use.
type quarantine map[string]time.Time

// add quarantines nodes for d from now; a node already quarantined keeps
// its earlier end.
func (q quarantine) add(nodes sets.Set[string], now time.Time, d time.Duration) {
	for n := range nodes {
		if _, ok := q[n]; !ok {
			q[n] = now.Add(d)
		}
	}
}

// takeDue removes the nodes whose quarantine has ended at now and returns
// them, sorted. A node still missing after that is quarantined again by
// the next add.
func (q quarantine) takeDue(now time.Time) []string {
	var due []string
	for n, end := range q {
		if !now.Before(end) {
			due = append(due, n)
			delete(q, n)
		}
	}
	slices.Sort(due)
	return due
}

// failedStatus returns the status the collector gives a pod before it
// force-deletes it: phase Failed and, when cond is set, cond as of now (its
// lastTransitionTime kept when the pod already had it with the same
// status), as Kubernetes' markFailedAndDeletePodWithCondition. ok is false
// for a pod that already finished: its status stays as it is.
func failedStatus(p *corev1.Pod, cond *corev1.PodCondition, now time.Time) (status corev1.PodStatus, ok bool) {
	if isTerminated(p) {
		return p.Status, false
	}
	st := *p.Status.DeepCopy()
	st.Phase = corev1.PodFailed
	if cond == nil {
		return st, true
	}
	c := *cond
	c.LastTransitionTime = metav1.NewTime(now)
	i := slices.IndexFunc(st.Conditions, func(x corev1.PodCondition) bool { return x.Type == c.Type })
	if i < 0 {
		st.Conditions = append(st.Conditions, c)
		return st, true
	}
	if st.Conditions[i].Status == c.Status {
		c.LastTransitionTime = st.Conditions[i].LastTransitionTime
	}
	st.Conditions[i] = c
	return st, true
}
