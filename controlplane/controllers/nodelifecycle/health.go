package nodelifecycle

import (
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// This file holds the controller's decisions as pure functions of a
// snapshot (node, lease, pod, the controller's clock); controller.go does
// the I/O.

// Condition reasons and messages, as Kubernetes' node lifecycle controller
// writes them.
const (
	reasonStatusUnknown      = "NodeStatusUnknown"
	messageStatusUnknown     = "Kubelet stopped posting node status."
	reasonStatusNeverUpdated = "NodeStatusNeverUpdated"
	messageNeverUpdated      = "Kubelet never posted node status."
)

// heartbeat is what the controller last saw of a node's liveness signals:
// the lease's renewTime and the Ready condition, and probe, the time on the
// controller's own clock at which it last saw either change. Counting from
// probe (as Kubernetes does) makes the grace period immune to skew between
// the node's clock and the control plane's.
type heartbeat struct {
	probe time.Time
	renew time.Time
	ready *corev1.NodeCondition
}

// observe returns the heartbeat after looking at node and lease (nil: none)
// at now. A node seen for the first time counts as heard from now, so a
// restarted controller gives every node a full grace period.
func observe(prev *heartbeat, node *corev1.Node, lease *coordinationv1.Lease, now time.Time) heartbeat {
	ready := readyCondition(node)
	var renew time.Time
	if lease != nil && lease.Spec.RenewTime != nil {
		renew = lease.Spec.RenewTime.Time
	}
	if prev == nil {
		return heartbeat{probe: now, renew: renew, ready: ready}
	}
	hb := *prev
	if !apiequality.Semantic.DeepEqual(prev.ready, ready) {
		hb.probe, hb.ready = now, ready
	}
	if renew.After(prev.renew) {
		hb.probe, hb.renew = now, renew
	}
	return hb
}

// conditionsSetUnknown are the conditions a silent node's are set Unknown
// (NetworkUnavailable is left to whoever manages the network, as in
// Kubernetes).
var conditionsSetUnknown = []corev1.NodeConditionType{
	corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure,
}

// nodeHealth returns the node's conditions as they should be at now, and
// whether they differ from the node's: when nothing was heard from the node
// (probe) for longer than grace (startupGrace if it never posted a Ready
// condition), Ready, MemoryPressure, DiskPressure and PIDPressure become
// Unknown with reason NodeStatusUnknown ("Kubelet stopped posting node
// status."), or NodeStatusNeverUpdated for conditions it never posted.
// Otherwise the agent's conditions stand: the controller never sets Ready
// back to True, the agent does.
func nodeHealth(node *corev1.Node, probe, now time.Time, grace, startupGrace time.Duration) ([]corev1.NodeCondition, bool) {
	if readyCondition(node) == nil {
		grace = startupGrace
	}
	conds := make([]corev1.NodeCondition, len(node.Status.Conditions))
	for i := range node.Status.Conditions {
		node.Status.Conditions[i].DeepCopyInto(&conds[i])
	}
	if !now.After(probe.Add(grace)) {
		return conds, false
	}
	changed := false
	ts := metav1.NewTime(now)
	for _, typ := range conditionsSetUnknown {
		c := findCondition(conds, typ)
		if c == nil {
			conds = append(conds, corev1.NodeCondition{
				Type: typ, Status: corev1.ConditionUnknown,
				Reason: reasonStatusNeverUpdated, Message: messageNeverUpdated,
				LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: ts,
			})
			changed = true
			continue
		}
		if c.Status != corev1.ConditionUnknown {
			c.Status, c.Reason, c.Message, c.LastTransitionTime = corev1.ConditionUnknown, reasonStatusUnknown, messageStatusUnknown, ts
			changed = true
		}
	}
	return conds, changed
}

// managedTaint is one taint the controller owns on nodes.
type managedTaint struct {
	key    string
	effect corev1.TaintEffect
}

// managedTaints are the taints wantTaints adds and removes, in the order it
// appends them: the NoExecute taints for a node that is not ready or
// unreachable, and the NoSchedule taints of Kubernetes' TaintNodesByCondition.
var managedTaints = []managedTaint{
	{corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute},
	{corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute},
	{corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule},
	{corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule},
	{corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule},
	{corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule},
	{corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule},
	{corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule},
	{corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule},
}

// wantTaints returns the node's taints as its conditions call for:
// Ready=False adds node.kubernetes.io/not-ready and Ready=Unknown
// node.kubernetes.io/unreachable, each with effects NoExecute (timeAdded
// now) and NoSchedule; MemoryPressure, DiskPressure, PIDPressure and
// NetworkUnavailable True, and spec.unschedulable, add their NoSchedule
// taints. Taints the controller does not manage are kept, and so are managed
// ones still wanted (with their timeAdded).
func wantTaints(node *corev1.Node, now time.Time) []corev1.Taint {
	want := map[managedTaint]bool{}
	for _, c := range node.Status.Conditions {
		switch {
		case c.Type == corev1.NodeReady && c.Status == corev1.ConditionFalse:
			want[managedTaint{corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute}] = true
			want[managedTaint{corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule}] = true
		case c.Type == corev1.NodeReady && c.Status == corev1.ConditionUnknown:
			want[managedTaint{corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute}] = true
			want[managedTaint{corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule}] = true
		case c.Type == corev1.NodeMemoryPressure && c.Status == corev1.ConditionTrue:
			want[managedTaint{corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule}] = true
		case c.Type == corev1.NodeDiskPressure && c.Status == corev1.ConditionTrue:
			want[managedTaint{corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule}] = true
		case c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue:
			want[managedTaint{corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule}] = true
		case c.Type == corev1.NodePIDPressure && c.Status == corev1.ConditionTrue:
			want[managedTaint{corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule}] = true
		}
	}
	if node.Spec.Unschedulable {
		want[managedTaint{corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule}] = true
	}
	managed := map[managedTaint]bool{}
	for _, m := range managedTaints {
		managed[m] = true
	}
	var out []corev1.Taint
	have := map[managedTaint]bool{}
	for _, t := range node.Spec.Taints {
		m := managedTaint{t.Key, t.Effect}
		if managed[m] && !want[m] {
			continue
		}
		have[m] = true
		out = append(out, *t.DeepCopy())
	}
	for _, m := range managedTaints {
		if !want[m] || have[m] {
			continue
		}
		t := corev1.Taint{Key: m.key, Effect: m.effect}
		if m.effect == corev1.TaintEffectNoExecute {
			ts := metav1.NewTime(now)
			t.TimeAdded = &ts
		}
		out = append(out, t)
	}
	return out
}

// podEvictionTime says whether and when a pod must leave a node with
// taints, as Kubernetes' taint eviction does: a NoExecute taint the pod does
// not tolerate evicts it at once; one it tolerates with tolerationSeconds
// evicts it that many seconds after the later of the taint's addition (since
// gives the taint's timeAdded, or when the controller first saw it) and
// onNode, when the pod came to be on the node, so that a pod placed on a
// node tainted long ago still gets its full tolerationSeconds; a toleration
// without tolerationSeconds keeps it forever. The answer is the earliest
// over all NoExecute taints; evict is false when there is none to fear.
// Of several tolerations matching a taint the first counts, as in
// Kubernetes.
func podEvictionTime(pod *corev1.Pod, taints []corev1.Taint, since func(corev1.Taint) time.Time, onNode time.Time) (at time.Time, evict bool) {
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		var tol *corev1.Toleration
		for j := range pod.Spec.Tolerations {
			if pod.Spec.Tolerations[j].ToleratesTaint(logr.Discard(), t, false) {
				tol = &pod.Spec.Tolerations[j]
				break
			}
		}
		start := since(*t)
		if onNode.After(start) {
			start = onNode
		}
		var deadline time.Time
		switch {
		case tol == nil:
			// Not tolerated: at once. The zero time is before any clock.
		case tol.TolerationSeconds == nil:
			continue
		case *tol.TolerationSeconds <= 0:
			deadline = start
		default:
			deadline = start.Add(time.Duration(*tol.TolerationSeconds) * time.Second)
		}
		if !evict || deadline.Before(at) {
			at, evict = deadline, true
		}
	}
	return at, evict
}

// podOnNodeSince returns when the pod came to be on its node, as its
// timestamps tell (all of them the API server's clock): the lastTransitionTime
// of its PodScheduled=True condition, which the binding subresource sets
// when the scheduler binds the pod, or its creationTimestamp if that is
// later or there is no such condition, as for a pod created with
// spec.nodeName set (DaemonSet and mirror pods among them). Such a pod's
// PodScheduled condition is written by its node agent, on the agent's
// clock, at the agent's first status report, so it may be later than the
// pod's arrival by the agent's delay and clock skew; the controller bounds
// the answer by when it first saw the pod (Controller.podTimes).
func podOnNodeSince(pod *corev1.Pod) time.Time {
	since := pod.CreationTimestamp.Time
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue && c.LastTransitionTime.After(since) {
			since = c.LastTransitionTime.Time
		}
	}
	return since
}

// readyCondition returns a copy of the node's Ready condition, or nil.
func readyCondition(node *corev1.Node) *corev1.NodeCondition {
	if c := findCondition(node.Status.Conditions, corev1.NodeReady); c != nil {
		return c.DeepCopy()
	}
	return nil
}

func findCondition(conds []corev1.NodeCondition, typ corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// noExecuteTaints returns the NoExecute ones of taints.
func noExecuteTaints(taints []corev1.Taint) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}
