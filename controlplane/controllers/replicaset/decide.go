package replicaset

import (
	"sort"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// PodDeletionCostAnnotation ranks pods for scale-down: lower cost goes
// first (Kubernetes' controller.kubernetes.io/pod-deletion-cost).
const PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// Condition reasons on ReplicaFailure, as Kubernetes sets them.
const (
	ReasonFailedCreate = "FailedCreate"
	ReasonFailedDelete = "FailedDelete"
)

// Event reasons, as Kubernetes records them.
const (
	EventSuccessfulCreate = "SuccessfulCreate"
	EventFailedCreate     = "FailedCreate"
	EventSuccessfulDelete = "SuccessfulDelete"
	EventFailedDelete     = "FailedDelete"
)

// IsPodActive reports whether pod counts as a replica: not finished and
// not being deleted.
func IsPodActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

// IsPodTerminating reports whether pod is being deleted but has not
// finished (it still holds its resources).
func IsPodTerminating(p *corev1.Pod) bool {
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// podReadyCondition returns pod's Ready condition, or nil.
func podReadyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// IsPodReady reports whether pod's Ready condition is True.
func IsPodReady(p *corev1.Pod) bool {
	c := podReadyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// IsPodAvailable reports whether pod has been ready for at least
// minReadySeconds at now.
func IsPodAvailable(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	return availableIn(p, minReadySeconds, now) == 0
}

// availableIn is how long until a ready pod becomes available: 0 when it
// already is, -1 when it is not ready at all.
func availableIn(p *corev1.Pod, minReadySeconds int32, now time.Time) time.Duration {
	c := podReadyCondition(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		return -1
	}
	if minReadySeconds == 0 {
		return 0
	}
	if c.LastTransitionTime.IsZero() {
		return 0
	}
	at := c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second)
	if at.Before(now) {
		return 0
	}
	// Kubernetes requires the deadline to be strictly before now.
	return at.Sub(now) + time.Millisecond
}

// Status is the computed status of a ReplicaSet and, when some ready pod
// is not yet available, how long until the first one becomes available
// (RecheckAfter, 0 when none is pending).
type Status struct {
	appsv1.ReplicaSetStatus
	RecheckAfter time.Duration
}

// CalculateStatus is rs's status given its claimed active pods, its
// terminating pods and the error (if any) of this sync's create/delete
// step, at now. observedGeneration is left as rs had it; the caller sets it
// when writing.
func CalculateStatus(rs *appsv1.ReplicaSet, active, terminating []*corev1.Pod, manageErr error, now time.Time) Status {
	st := Status{ReplicaSetStatus: *rs.Status.DeepCopy()}
	templateLabels := labels.SelectorFromSet(rs.Spec.Template.Labels)
	var fully, ready, available int32
	for _, p := range active {
		if templateLabels.Matches(labels.Set(p.Labels)) {
			fully++
		}
		if !IsPodReady(p) {
			continue
		}
		ready++
		switch d := availableIn(p, rs.Spec.MinReadySeconds, now); {
		case d == 0:
			available++
		case d > 0 && (st.RecheckAfter == 0 || d < st.RecheckAfter):
			st.RecheckAfter = d
		}
	}
	failure := getCondition(rs.Status.Conditions, appsv1.ReplicaSetReplicaFailure)
	switch {
	case manageErr != nil && failure == nil:
		reason := ""
		if diff := len(active) - int(ptr.Deref(rs.Spec.Replicas, 1)); diff < 0 {
			reason = ReasonFailedCreate
		} else if diff > 0 {
			reason = ReasonFailedDelete
		}
		st.Conditions = setCondition(st.Conditions, appsv1.ReplicaSetCondition{
			Type:               appsv1.ReplicaSetReplicaFailure,
			Status:             corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(now),
			Reason:             reason,
			Message:            manageErr.Error(),
		})
	case manageErr == nil && failure != nil:
		st.Conditions = removeCondition(st.Conditions, appsv1.ReplicaSetReplicaFailure)
	}
	st.Replicas = int32(len(active))
	st.FullyLabeledReplicas = fully
	st.ReadyReplicas = ready
	st.AvailableReplicas = available
	st.TerminatingReplicas = ptr.To(int32(len(terminating)))
	return st
}

// StatusChanged reports whether writing next over rs's status would change
// anything (Kubernetes also writes when only the generation moved).
func StatusChanged(rs *appsv1.ReplicaSet, next appsv1.ReplicaSetStatus) bool {
	cur := rs.Status
	return cur.Replicas != next.Replicas ||
		cur.FullyLabeledReplicas != next.FullyLabeledReplicas ||
		cur.ReadyReplicas != next.ReadyReplicas ||
		cur.AvailableReplicas != next.AvailableReplicas ||
		ptr.Deref(cur.TerminatingReplicas, -1) != ptr.Deref(next.TerminatingReplicas, -1) ||
		rs.Generation != cur.ObservedGeneration ||
		!conditionsEqual(cur.Conditions, next.Conditions)
}

func conditionsEqual(a, b []appsv1.ReplicaSetCondition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Status != b[i].Status || a[i].Reason != b[i].Reason ||
			a[i].Message != b[i].Message || !a[i].LastTransitionTime.Equal(&b[i].LastTransitionTime) {
			return false
		}
	}
	return true
}

func getCondition(cs []appsv1.ReplicaSetCondition, t appsv1.ReplicaSetConditionType) *appsv1.ReplicaSetCondition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}

func setCondition(cs []appsv1.ReplicaSetCondition, c appsv1.ReplicaSetCondition) []appsv1.ReplicaSetCondition {
	if cur := getCondition(cs, c.Type); cur != nil && cur.Status == c.Status && cur.Reason == c.Reason {
		return cs
	}
	return append(removeCondition(cs, c.Type), c)
}

func removeCondition(cs []appsv1.ReplicaSetCondition, t appsv1.ReplicaSetConditionType) []appsv1.ReplicaSetCondition {
	var out []appsv1.ReplicaSetCondition
	for _, c := range cs {
		if c.Type != t {
			out = append(out, c)
		}
	}
	return out
}

// SlowStartInitialBatchSize is the first batch of creates (Kubernetes'
// controller.SlowStartInitialBatchSize).
const SlowStartInitialBatchSize = 1

// SlowStartBatch calls fn count times, with i from 0 to count-1, in
// batches that start at initialBatchSize and double after every batch that
// fully succeeds; the calls in a batch run concurrently. It stops after the
// first batch with an error (the calls from the next i on are not made)
// and returns how many calls succeeded and the first error.
func SlowStartBatch(count, initialBatchSize int, fn func(i int) error) (int, error) {
	remaining := count
	successes := 0
	for batch := min(remaining, initialBatchSize); batch > 0; batch = min(2*batch, remaining) {
		errs := make(chan error, batch)
		var wg sync.WaitGroup
		for i := count - remaining; i < count-remaining+batch; i++ {
			wg.Go(func() {
				if err := fn(i); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		successes += batch - len(errs)
		if len(errs) > 0 {
			return successes, <-errs
		}
		remaining -= batch
	}
	return successes, nil
}

// PodsToDelete picks n of pods (the owner's active pods) to delete, in
// Kubernetes' order: see ActivePodsWithRanks. related are the active pods
// of every ReplicaSet sharing this one's owner (itself included); a pod on
// a node with more of them is deleted first.
func PodsToDelete(pods, related []*corev1.Pod, n int, now time.Time) []*corev1.Pod {
	if n >= len(pods) {
		return pods
	}
	onNode := map[string]int{}
	for _, p := range related {
		if IsPodActive(p) {
			onNode[p.Spec.NodeName]++
		}
	}
	ranked := ActivePodsWithRanks{Pods: append([]*corev1.Pod(nil), pods...), Rank: make([]int, len(pods)), Now: now}
	for i, p := range ranked.Pods {
		ranked.Rank[i] = onNode[p.Spec.NodeName]
	}
	sort.Sort(ranked)
	return ranked.Pods[:n]
}

// ActivePodsWithRanks sorts pods so the ones to delete first come first:
//  1. unassigned < assigned;
//  2. Pending < Unknown < Running;
//  3. not ready < ready;
//  4. lower pod-deletion-cost < higher;
//  5. higher rank (more related pods on the same node) < lower;
//  6. ready for less time < ready for more time;
//  7. more container restarts < fewer;
//  8. newer (or no creation time) < older.
type ActivePodsWithRanks struct {
	Pods []*corev1.Pod
	Rank []int
	Now  time.Time
}

func (s ActivePodsWithRanks) Len() int { return len(s.Pods) }

func (s ActivePodsWithRanks) Swap(i, j int) {
	s.Pods[i], s.Pods[j] = s.Pods[j], s.Pods[i]
	s.Rank[i], s.Rank[j] = s.Rank[j], s.Rank[i]
}

var podPhaseOrdinal = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

func (s ActivePodsWithRanks) Less(i, j int) bool {
	pi, pj := s.Pods[i], s.Pods[j]
	if pi.Spec.NodeName != pj.Spec.NodeName && (pi.Spec.NodeName == "" || pj.Spec.NodeName == "") {
		return pi.Spec.NodeName == ""
	}
	if oi, oj := podPhaseOrdinal[pi.Status.Phase], podPhaseOrdinal[pj.Status.Phase]; oi != oj {
		return oi < oj
	}
	if ri, rj := IsPodReady(pi), IsPodReady(pj); ri != rj {
		return !ri
	}
	if ci, cj := deletionCost(pi), deletionCost(pj); ci != cj {
		return ci < cj
	}
	if s.Rank[i] != s.Rank[j] {
		return s.Rank[i] > s.Rank[j]
	}
	if IsPodReady(pi) && IsPodReady(pj) {
		ti, tj := podReadyTime(pi), podReadyTime(pj)
		if !ti.Equal(tj) {
			return afterOrZero(ti, tj)
		}
	}
	ri, si := maxRestarts(pi)
	rj, sj := maxRestarts(pj)
	if ri != rj {
		return ri > rj
	}
	if si != sj {
		return si > sj
	}
	if !pi.CreationTimestamp.Equal(&pj.CreationTimestamp) {
		return afterOrZero(&pi.CreationTimestamp, &pj.CreationTimestamp)
	}
	return false
}

// afterOrZero: a zero time sorts first, then the later time.
func afterOrZero(t1, t2 *metav1.Time) bool {
	if t1.IsZero() || t2.IsZero() {
		return t1.IsZero()
	}
	return t1.After(t2.Time)
}

func podReadyTime(p *corev1.Pod) *metav1.Time {
	if c := podReadyCondition(p); c != nil && c.Status == corev1.ConditionTrue {
		return &c.LastTransitionTime
	}
	return &metav1.Time{}
}

func deletionCost(p *corev1.Pod) int32 {
	v, ok := p.Annotations[PodDeletionCostAnnotation]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return int32(n)
}

// maxRestarts is the highest restart count of pod's regular containers
// and of its sidecars (restartable init containers); Kubernetes compares the
// second only when the first ties.
func maxRestarts(p *corev1.Pod) (regular, sidecar int32) {
	for _, c := range p.Status.ContainerStatuses {
		regular = max(regular, c.RestartCount)
	}
	sidecars := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars[c.Name] = true
		}
	}
	for _, c := range p.Status.InitContainerStatuses {
		if sidecars[c.Name] {
			sidecar = max(sidecar, c.RestartCount)
		}
	}
	return regular, sidecar
}

// ownedBy reports whether uid is obj's controller.
func ownedBy(obj metav1.Object, uid types.UID) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == uid
}
